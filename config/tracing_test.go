package config

import "testing"

func TestTracingDefaults(t *testing.T) {
	cfg := mustParse(t, "")
	if tr := cfg.Tracing; tr.OTLPEndpoint != "" || tr.SampleRatio != 0.1 || tr.ServiceName != "signgate" || tr.QueueSize != 2048 {
		t.Errorf("tracing defaults: %+v, want off, ratio 0.1, service signgate, queue 2048", tr)
	}
	cfg = mustParse(t, "tracing: {otlp_endpoint: \"http://127.0.0.1:4318\", sample_ratio: 0, service_name: gw-a}\n")
	if tr := cfg.Tracing; tr.OTLPEndpoint != "http://127.0.0.1:4318" || tr.SampleRatio != 0 || tr.ServiceName != "gw-a" {
		t.Errorf("tracing as written: %+v", tr)
	}
	if cfg := mustParse(t, "tracing: {sample_ratio: 1}\n"); cfg.Tracing.SampleRatio != 1 {
		t.Errorf("sample_ratio: 1 read as %v", cfg.Tracing.SampleRatio)
	}
}

func TestTracingValidation(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "endpoint without a scheme, ratio above 1",
			yaml: "tracing:\n  otlp_endpoint: 127.0.0.1:4318\n  sample_ratio: 1.5\n",
			want: []string{
				`tracing.otlp_endpoint (line 2): want an absolute http:// or https:// URL, got "127.0.0.1:4318"`,
				`tracing.sample_ratio (line 3): want a ratio from 0 to 1 (0.1: one new trace in ten), got 1.5`,
			},
		},
		{
			name: "credentials in the endpoint, no service name",
			yaml: "tracing:\n  otlp_endpoint: https://user:pw@otel.example\n  service_name: \"\"\n",
			want: []string{
				`tracing.otlp_endpoint (line 2): may not carry a user or password`,
				`tracing.service_name (line 3): required (the service.name of every span)`,
			},
		},
		{
			name: "a ratio that is not a number",
			yaml: "tracing:\n  sample_ratio: ten percent\n",
			want: []string{`tracing.sample_ratio (line 2): want a number such as 0.1, got "ten percent"`},
		},
		{
			name: "a queue too small to hold one batch",
			yaml: "tracing:\n  queue_size: 10\n",
			want: []string{`tracing.queue_size (line 2): want from 64 to 1048576 spans, got 10`},
		},
		{
			name: "an unknown key",
			yaml: "tracing: {endpoint: \"http://127.0.0.1:4318\"}\n",
			want: []string{`tracing.endpoint (line 1): unknown key "endpoint"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equalLines(t, problemsOf(t, tt.yaml), tt.want)
		})
	}
}
