package service

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The tracing and log flags, from the command line or MICRO_ variables,
// reach the Config and the logger Setup returns; wrong values are usage
// errors before anything starts.
func TestSetupTracingFlags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantJSON bool
		wantErr  string // in the usage error; "" for none
	}{
		{"defaults: text logs, no tracing", nil, nil, false, ""},
		{"json logs and an endpoint", []string{"--log_format", "json", "--otlp_endpoint", "http://127.0.0.1:4318", "--trace_sample_ratio", "1"}, nil, true, ""},
		{"from the environment", nil, map[string]string{"MICRO_LOG_FORMAT": "json", "MICRO_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"unknown log format", []string{"--log_format", "xml"}, nil, false, "log format"},
		{"ratio above 1", []string{"--trace_sample_ratio", "2"}, nil, false, "sample ratio"},
		{"endpoint without scheme", []string{"--otlp_endpoint", "127.0.0.1:4318"}, nil, false, "otlp endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg, log, done, err := Setup{Name: "test"}.Parse(append([]string{"test"}, tc.args...), func(k string) string { return tc.env[k] }, &out)
			if tc.wantErr != "" {
				if !done || ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("done %v, err %v: want a usage error about %s", done, err, tc.wantErr)
				}
				return
			}
			if done || err != nil {
				t.Fatalf("done %v, err %v", done, err)
			}
			if got := tc.env["MICRO_OTLP_ENDPOINT"] + argAfter(tc.args, "--otlp_endpoint"); cfg.Tracing.OTLPEndpoint != got {
				t.Errorf("endpoint %q, want %q", cfg.Tracing.OTLPEndpoint, got)
			}
			log.Info("hi")
			if isJSON := json.Valid(bytes.TrimSpace(out.Bytes())); isJSON != tc.wantJSON {
				t.Errorf("log line %q: JSON %v, want %v", out.String(), isJSON, tc.wantJSON)
			}
		})
	}
}

// argAfter is the value following flag in args, or "".
func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
