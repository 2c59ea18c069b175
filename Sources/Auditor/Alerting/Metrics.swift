import Prometheus
