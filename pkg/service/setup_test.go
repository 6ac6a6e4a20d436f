package service

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestSetupParse(t *testing.T) {
	errDown := errors.New("down")
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantDone bool
		check    func(t *testing.T, cfg Config, own, probed, out string, err error)
	}{
		{"own flag from its own variable", nil, map[string]string{"OWN": "x", "MICRO_REGISTRY": "memory"}, false,
			func(t *testing.T, cfg Config, own, probed, out string, err error) {
				if err != nil || own != "x" || cfg.Name != "test" || cfg.Registry.Name != "memory" {
					t.Errorf("err %v, own %q, name %q, registry %q", err, own, cfg.Name, cfg.Registry.Name)
				}
			}},
		{"-h lists shared and own flags", []string{"-h"}, nil, true,
			func(t *testing.T, _ Config, _, _, out string, err error) {
				if err != nil || !strings.Contains(out, "-registry") || !strings.Contains(out, "-own") {
					t.Errorf("err %v, usage:\n%s", err, out)
				}
			}},
		{"--health_probe runs the probe only", []string{"--health_probe", "--server_address", ":9090"}, nil, true,
			func(t *testing.T, _ Config, _, probed, out string, err error) {
				if !errors.Is(err, errDown) || probed != ":9090" || out != "" {
					t.Errorf("err %v, probed %q, output %q", err, probed, out)
				}
			}},
		{"unknown flag", []string{"--nope"}, nil, true,
			func(t *testing.T, _ Config, _, _, _ string, err error) {
				if ExitCode(err) != 2 || !strings.Contains(err.Error(), "nope") {
					t.Errorf("err %v, want a usage error naming the flag", err)
				}
			}},
		{"settings that cannot work together", []string{"--register_ttl", "5s", "--register_interval", "5s"}, nil, true,
			func(t *testing.T, _ Config, _, _, _ string, err error) {
				if ExitCode(err) != 2 || !strings.Contains(err.Error(), "register interval") {
					t.Errorf("err %v, want a usage error", err)
				}
			}},
		{"own settings checked against the shared ones", []string{"--own", "bad", "--client_request_timeout", "3s"}, nil, true,
			func(t *testing.T, _ Config, _, _, _ string, err error) {
				if ExitCode(err) != 2 || !strings.Contains(err.Error(), "own bad with 3s") {
					t.Errorf("err %v, want the usage error of Check", err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var own, probed string
			var out bytes.Buffer
			cfg, log, done, err := Setup{
				Name:  "test",
				Flags: func(fs *flag.FlagSet) { fs.StringVar(&own, "own", "", "a flag of the service's own") },
				Env:   map[string]string{"own": "OWN"},
				Check: func(c Config) error {
					if own == "bad" {
						return fmt.Errorf("own %s with %v", own, c.Client.RequestTimeout)
					}
					return nil
				},
				Probe: func(c Config) error { probed = c.ServerAddress; return errDown },
			}.Parse(append([]string{"test"}, tc.args...), func(k string) string { return tc.env[k] }, &out)
			if done != tc.wantDone || (!done && (log == nil || err != nil)) {
				t.Fatalf("done %v, logger %v, err %v; want done %v, and a logger and no error when not done", done, log, err, tc.wantDone)
			}
			tc.check(t, cfg, own, probed, out.String(), err)
		})
	}
}

// Parse turns heap profiling off unless the instance serves profiles: the
// runtime's table of sampled stacks costs memory under load.
func TestSetupParseHeapProfiling(t *testing.T) {
	defaultRate := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = defaultRate })
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{"--pprof"}, defaultRate},
		{[]string{"--pprof", "--metrics_address", "off"}, 0},
	} {
		runtime.MemProfileRate = defaultRate
		if _, _, done, err := (Setup{Name: "test"}).Parse(append([]string{"test", "--registry", "memory"}, tc.args...), func(string) string { return "" }, io.Discard); done || err != nil {
			t.Fatalf("%v: done %v, err %v", tc.args, done, err)
		}
		if runtime.MemProfileRate != tc.want {
			t.Errorf("%v: runtime.MemProfileRate %d, want %d", tc.args, runtime.MemProfileRate, tc.want)
		}
	}
}
