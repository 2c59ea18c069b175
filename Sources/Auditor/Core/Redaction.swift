import Foundation

/// Secrets never leave auditd: librdkafka properties that carry credentials (SASL/TLS) and passwords in
/// URLs are masked wherever a setting is echoed — logs, errors, reports.
public enum Redaction {
    public static let mask = "****"

    /// Whether a librdkafka property holds a secret: `sasl.password`, `ssl.key.password`,
    /// `ssl.keystore.password`, `sasl.oauthbearer.client.secret`, `sasl.oauthbearer.config`, `ssl.key.pem`, ….
    public static func isSecret(property key: String) -> Bool {
        let key = key.lowercased()
        return ["password", "secret", "oauthbearer.config", "key.pem", "token", "credential"].contains {
            key.contains($0)
        }
    }

    /// `KEY=VALUE` with the value masked when the key names a secret. Text that is not `KEY=VALUE` keeps
    /// only what comes before its first `:` or space (a mistyped separator must not print the value).
    public static func property(_ text: String) -> String {
        if let equals = text.firstIndex(of: "=") {
            let key = String(text[..<equals])
            return isSecret(property: key) ? "\(key)=\(mask)" : text
        }
        if let cut = text.firstIndex(where: { $0 == ":" || $0 == " " }) { return "\(text[..<cut])\(text[cut])\(mask)" }
        return text
    }

    /// A URL with the password of its user info masked (`https://user:****@host/…`); other text unchanged.
    public static func url(_ text: String) -> String {
        guard let scheme = text.range(of: "://") else { return text }
        let authorityEnd =
            text[scheme.upperBound...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" })
            ?? text.endIndex
        let authority = text[scheme.upperBound..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return text }
        let userInfo = authority[..<at]
        let user = userInfo.firstIndex(of: ":").map { userInfo[..<$0] } ?? userInfo
        return String(text[..<scheme.upperBound]) + user + ":" + mask + String(text[at...])
    }

    /// `text` as one line: newlines and other control characters shown escaped (`\n`, `\u{1}`), so an echoed
    /// value cannot split a one-line refusal.
    public static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
        return String(
            text.unicodeScalars.map { scalar -> String in
                scalar.properties.generalCategory == .control ? scalar.escaped(asASCII: true) : String(scalar)
            }.joined())
    }

    /// `text` with every occurrence of the given secret values replaced by the mask.
    public static func scrub(_ text: String, secrets: some Sequence<String>) -> String {
        var text = text
        for secret in secrets where secret.count >= 3 { text = text.replacingOccurrences(of: secret, with: mask) }
        return text
    }
}
