package config

import (
	"math"
	"net/url"
)

// Tracing sends OpenTelemetry traces over OTLP/HTTP. With no OTLPEndpoint (the
// default) tracing is off and costs nothing.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL, "http://127.0.0.1:4318";
	// spans go to its /v1/traces unless the URL names a path of its own.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded, from 0 to 1. A caller's
	// traceparent decides for the traces it continues.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name the spans carry.
	ServiceName string `yaml:"service_name"`
	// QueueSize bounds the spans waiting for export. A span ended while the queue is
	// full is dropped and counted (signgate_trace_spans_dropped_total); a request
	// never waits for the collector.
	QueueSize int `yaml:"queue_size"`
}

// tracingDefaults fills the tracing section.
func tracingDefaults(c *Config, def func(string, func())) {
	t := &c.Tracing
	def("tracing.sample_ratio", func() { t.SampleRatio = 0.1 })
	def("tracing.service_name", func() { t.ServiceName = "signgate" })
	def("tracing.queue_size", func() { t.QueueSize = 2048 })
}

// tracing checks the tracing section.
func (v *validator) tracing(t *Tracing) {
	if t.OTLPEndpoint != "" {
		v.httpURL("tracing.otlp_endpoint", t.OTLPEndpoint)
		if u, err := url.Parse(t.OTLPEndpoint); err == nil && u.User != nil {
			// Credentials in the URL would be logged with it; a collector that
			// needs them belongs behind a local agent.
			v.addf("tracing.otlp_endpoint", "may not carry a user or password")
		}
	}
	if r := t.SampleRatio; math.IsNaN(r) || r < 0 || r > 1 {
		v.addf("tracing.sample_ratio", "want a ratio from 0 to 1 (0.1: one new trace in ten), got %v", r)
	}
	if t.QueueSize < 64 || t.QueueSize > 1<<20 {
		v.addf("tracing.queue_size", "want from 64 to 1048576 spans, got %d", t.QueueSize)
	}
	if t.ServiceName == "" {
		v.addf("tracing.service_name", "required (the service.name of every span)")
	}
}
