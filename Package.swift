// swift-tools-version:6.0
import PackageDescription

// The targets follow the data path; each imports only the ones before it (docs/architecture.md):
//   AuditorCore → AuditorKafka → MilvusProto, AuditorTransport → AuditorMilvus → AuditorShadow → AuditorAudit
//   → AuditorReport → AuditorAlerting (metrics, Alertmanager) → Auditor (the application, `serve`) → auditd (the CLI).
// Only AuditorKafka imports CRdKafka, only AuditorTransport imports CCurl, only AuditorCore imports CXXHash.
// AuditorTesting holds every in-memory double (for tests, benchmarks and embedders); nothing in the
// production path depends on it.
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let protobuf = Target.Dependency.product(name: "SwiftProtobuf", package: "swift-protobuf")

let package = Package(
    name: "auditd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "auditd", targets: ["auditd"]),
        .library(name: "Auditor", targets: ["Auditor"]),
        .library(name: "AuditorTesting", targets: ["AuditorTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
    ],
    targets: [
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash", providers: [.apt(["libxxhash-dev"])]),
        .target(name: "AuditorCore", dependencies: ["CXXHash"], path: "Sources/Auditor/Core"),
        .target(name: "AuditorKafka", dependencies: ["AuditorCore", "CRdKafka", logging], path: "Sources/Auditor/Kafka"),
        .target(
            name: "MilvusProto", dependencies: [protobuf], path: "Sources/Auditor/MilvusProto",
            exclude: ["common.proto", "schema.proto", "msg.proto", "milvus.proto", "plan.proto", "query.proto"]),
        .target(
            name: "AuditorTransport", dependencies: ["AuditorCore", "CCurl", protobuf],
            path: "Sources/Auditor/Transport"),
        .target(
            name: "AuditorMilvus",
            dependencies: ["AuditorCore", "AuditorKafka", "AuditorTransport", "MilvusProto", protobuf, logging],
            path: "Sources/Auditor/Milvus"),
        .target(
            name: "AuditorShadow",
            dependencies: [
                "AuditorCore", "AuditorKafka", "AuditorMilvus", logging, .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Sources/Auditor/Shadow"),
        .target(
            name: "AuditorAudit",
            dependencies: ["AuditorCore", "AuditorTransport", "AuditorMilvus", "AuditorShadow", logging],
            path: "Sources/Auditor/Audit"),
        .target(
            name: "AuditorReport", dependencies: ["AuditorCore", "AuditorMilvus", "AuditorShadow"],
            path: "Sources/Auditor/Report"),
        .target(
            name: "AuditorAlerting",
            dependencies: [
                "AuditorCore", "AuditorTransport", "AuditorShadow", "AuditorReport", logging,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/Auditor/Alerting"),
        .target(
            name: "Auditor",
            dependencies: [
                "AuditorCore", "AuditorKafka", "AuditorTransport", "AuditorMilvus", "AuditorShadow", "AuditorAudit",
                "AuditorReport", "AuditorAlerting", logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "Sources/Auditor/App"),
        .target(
            name: "AuditorTesting",
            dependencies: ["AuditorCore", "AuditorKafka", "AuditorMilvus", "MilvusProto", protobuf, logging],
            path: "Sources/Auditor/Testing"),
        .executableTarget(
            name: "auditd",
            dependencies: ["Auditor", .product(name: "ArgumentParser", package: "swift-argument-parser"), logging]
        ),
        .executableTarget(
            name: "auditd-bench",
            dependencies: ["Auditor", "AuditorTesting", logging],
            path: "Benchmarks/auditd-bench"
        ),
        // Fuzz targets (libFuzzer): `dev/fuzz TARGET [SECONDS]` builds this with --sanitize=fuzzer.
        .executableTarget(
            name: "auditd-fuzz",
            dependencies: [
                "Auditor", "AuditorMilvus", "AuditorShadow", "AuditorTransport", "MilvusProto", protobuf, logging,
            ],
            path: "Fuzz/auditd-fuzz"
        ),
        .testTarget(
            name: "AuditorTests",
            dependencies: [
                "Auditor", "AuditorAudit", "AuditorCore", "AuditorKafka", "AuditorMilvus", "AuditorReport", "AuditorShadow",
                "AuditorTesting", "AuditorTransport", "AuditorAlerting", "MilvusProto", protobuf, logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Auditor", "AuditorAudit", "AuditorCore", "AuditorKafka", "AuditorMilvus", "AuditorReport", "AuditorShadow",
                "AuditorTesting", "AuditorTransport", "MilvusProto", logging,
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
