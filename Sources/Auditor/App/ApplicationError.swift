/// What the application refuses with one line a user can act on (the CLI prints it and exits 2).
public struct ApplicationError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A flag, environment variable or config file entry is wrong; the message names it.
        case configuration
        /// A collection to bootstrap is not in Milvus or has no loaded replica.
        case bootstrap
        /// `verify --replay` cannot rebuild the shadow from the log.
        case replay
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
