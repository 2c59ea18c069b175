// libcurl (Debian libcurl4-openssl-dev). curl_easy_setopt is variadic, which Swift cannot call:
// these typed wrappers are the only way auditd sets options.
#include <curl/curl.h>

static inline CURLcode auditd_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode auditd_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode auditd_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
typedef size_t (*auditd_curl_data_callback)(char *data, size_t size, size_t count, void *userdata);
static inline CURLcode auditd_curl_setopt_callback(CURL *handle, CURLoption option, auditd_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode auditd_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
typedef int (*auditd_curl_xferinfo_callback)(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                                             curl_off_t ulnow);
static inline CURLcode auditd_curl_setopt_xferinfo(CURL *handle, auditd_curl_xferinfo_callback value) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, value);
}
