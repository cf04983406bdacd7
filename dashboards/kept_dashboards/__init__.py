"""Dashboards as code: one panel spec that renders to Grafana JSON, Grafana provisioning
files and the built-in live page of `kept serve`."""
