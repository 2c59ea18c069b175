/// A minimal, allocation-light JSON object writer for one-object-per-line output.
public struct JSONLine {
    private var text = "{"
    private var first = true

    public init() {}

    private mutating func key(_ name: String) {
        if !first { text += "," }
        first = false
        text += "\""
        text += name
        text += "\":"
    }

    public mutating func string(_ name: String, _ value: String) {
        key(name)
        JSONLine.appendQuoted(value, to: &text)
    }

    public mutating func int<T: BinaryInteger>(_ name: String, _ value: T) {
        key(name)
        text += String(value)
    }

    public mutating func bool(_ name: String, _ value: Bool) {
        key(name)
        text += value ? "true" : "false"
    }

    public mutating func null(_ name: String) {
        key(name)
        text += "null"
    }

    /// Inserts an already-encoded JSON value.
    public mutating func raw(_ name: String, _ json: String) {
        key(name)
        text += json
    }

    public mutating func pk(_ name: String, _ pk: PrimaryKey) {
        switch pk {
        case .int(let value): int(name, value)
        case .string(let value): string(name, value)
        }
    }

    public var result: String { text + "}" }

    public static func quoted(_ value: String) -> String {
        var out = ""
        appendQuoted(value, to: &out)
        return out
    }

    static func appendQuoted(_ value: String, to out: inout String) {
        out += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
