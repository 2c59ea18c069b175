// librdkafka, built against Debian's librdkafka-dev (2.0.2); at run time any librdkafka.so.1 >= 2.0
// first on the library path is used (the local Tansu broker needs >= 2.1).
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
