import Auditor
print(KafkaLibrary.runtimeVersion)
