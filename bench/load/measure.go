package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// What each process of a stack used during a run: CPU from /proc (any
// process) and heap allocations from go_memstats_mallocs_total on its
// /metrics (ours serve it as shipped; the bare hops and the OTLP sink
// serve that one line, statsHandler; plain go-micro serves none).

// userHZ is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on Linux whatever the kernel's tick).
const userHZ = 100

// cpuTime is the user plus system CPU time the process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing one (state is field 3, utime 14, stime 15).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// ioCount is what a process wrote through system calls: bytes and calls.
type ioCount struct{ written, writes int64 }

// ioCounts reads wchar and syscw from /proc/<pid>/io (readable for our own
// processes).
func ioCounts(pid int) (ioCount, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return ioCount{}, err
	}
	var c ioCount
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return ioCount{}, fmt.Errorf("/proc/%d/io %s: %w", pid, k, err)
		}
		switch k {
		case "wchar":
			c.written = n
		case "syscw":
			c.writes = n
		}
	}
	return c, nil
}

const mallocsMetric = "go_memstats_mallocs_total"

var metricsClient = &http.Client{Timeout: 5 * time.Second}

// mallocs reads go_memstats_mallocs_total from a Prometheus text page.
func mallocs(url string) (float64, error) {
	rsp, err := metricsClient.Get(url)
	if err != nil {
		return 0, err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, rsp.Status)
	}
	sc := bufio.NewScanner(rsp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), mallocsMetric+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("GET %s: no %s", url, mallocsMetric)
}

// statsHandler serves go_memstats_mallocs_total as client_golang's Go
// collector does (ReadMemStats's Mallocs), for the processes that serve
// no /metrics of their own.
func statsHandler(w http.ResponseWriter, _ *http.Request) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Fprintf(w, "%s %d\n", mallocsMetric, m.Mallocs)
}

// serveStats serves statsHandler at GET /metrics on addr, in the
// background, for the life of the process.
func serveStats(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", statsHandler)
	go http.Serve(ln, mux) //nolint:errcheck // ends with the process
	return nil
}

// sink is an OTLP/HTTP receiver that reads each export and discards it,
// answering as a collector does (an empty ExportTraceServiceResponse), so
// that the services' tracing cost is measured without a collector's
// storage on the same two cores. GET /stats tells how many exports and
// bytes it took, to check that the services send what their sample ratio
// says.
func sink(listen string) error {
	var exports, bytes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exports.Add(1)
		bytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d %d\n", exports.Load(), bytes.Load())
	})
	mux.HandleFunc("GET /metrics", statsHandler)
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// sinkStats reads the sink's count of exports and bytes.
func sinkStats(base string) (exports, bytes int64, err error) {
	rsp, err := metricsClient.Get(base + "/stats")
	if err != nil {
		return 0, 0, err
	}
	defer rsp.Body.Close()
	_, err = fmt.Fscan(rsp.Body, &exports, &bytes)
	return exports, bytes, err
}
