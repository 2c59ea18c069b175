// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "auditd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "auditd", targets: ["auditd"]),
        .library(name: "Auditor", targets: ["Auditor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CXXHash",
            pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"])]
        ),
        .target(
            name: "Auditor",
            dependencies: [
                "CRdKafka",
                "CCurl",
                "CXXHash",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: [
                "Milvus/Proto/common.proto", "Milvus/Proto/schema.proto", "Milvus/Proto/msg.proto",
                "Milvus/Proto/milvus.proto", "Milvus/Proto/plan.proto", "Milvus/Proto/query.proto",
            ]
        ),
        .executableTarget(
            name: "auditd",
            dependencies: [
                "Auditor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "auditd-bench",
            dependencies: ["Auditor", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/auditd-bench"
        ),
        .testTarget(
            name: "AuditorTests",
            dependencies: ["Auditor", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Auditor", .product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
