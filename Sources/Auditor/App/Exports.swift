// `import Auditor` is the library's whole API: the application (`buildApplication`) and the types of every
// layer it hands out (shadow, findings, replica reads, reports).
@_exported import AuditorAudit
@_exported import AuditorCore
@_exported import AuditorKafka
@_exported import AuditorMilvus
@_exported import AuditorReport
@_exported import AuditorShadow
@_exported import AuditorTransport
