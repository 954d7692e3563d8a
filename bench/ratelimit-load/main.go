// Command ratelimit-load drives one rate limiter with a fixed number of
// workers for a fixed time and prints what it got, as one JSON line:
//
//	-target grpc   envoy.service.ratelimit.v2.RateLimitService/ShouldRateLimit
//	               (envoyproxy/ratelimit), one descriptor per request
//	-target http   POST /rate-limit/check of the gateway, HTTP/1.1 keep-alive
//
// Both sides are driven by the same loop, so the comparison measures the
// servers rather than two different clients.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	pb_struct "github.com/envoyproxy/go-control-plane/envoy/api/v2/ratelimit"
	pb "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v2"
	"google.golang.org/grpc"
)

type result struct {
	Target    string  `json:"target"`
	Workers   int     `json:"workers"`
	Seconds   float64 `json:"seconds"`
	Decisions int     `json:"decisions"`
	Allowed   int     `json:"allowed"`
	Denied    int     `json:"denied"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"decisions_per_second"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	// The generator's own CPU, so a reader can see what it took from the
	// servers on a small machine.
	ClientCPUMs float64 `json:"client_cpu_ms"`
	FirstError  string  `json:"first_error,omitempty"`
}

// decide makes one decision: allowed, or an error.
type decide func(ctx context.Context, worker int) (bool, error)

func main() {
	target := flag.String("target", "", "grpc or http")
	address := flag.String("address", "", "host:port of the gRPC service, or the gateway's base URL")
	workers := flag.Int("workers", 32, "concurrent workers, each with one request in flight")
	duration := flag.Duration("duration", 10*time.Second, "how long to drive the target")
	domain := flag.String("domain", "bench", "gRPC: the rate-limit domain")
	descriptor := flag.String("descriptor", "user=bench-user", "gRPC: key=value of the one descriptor entry")
	keys := flag.String("keys", "", "http: API keys, comma separated; worker i uses key i mod n")
	body := flag.String("body", `{"key": "bench-user", "policy": "bench"}`, "http: the request body")
	flag.Parse()

	var call decide
	switch *target {
	case "grpc":
		call = grpcDecide(*address, *domain, *descriptor)
	case "http":
		call = httpDecide(*address, strings.Split(*keys, ","), *body, *workers)
	default:
		fmt.Fprintln(os.Stderr, "-target must be grpc or http")
		os.Exit(2)
	}
	fmt.Println(run(*target, call, *workers, *duration))
}

func run(target string, call decide, workers int, duration time.Duration) string {
	ctx := context.Background()
	type tally struct {
		allowed, denied, errors int
		firstError              string
		latencies               []time.Duration
	}
	tallies := make([]tally, workers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			t := &tallies[w]
			for {
				began := time.Now()
				if began.After(deadline) {
					return
				}
				allowed, err := call(ctx, w)
				t.latencies = append(t.latencies, time.Since(began))
				switch {
				case err != nil:
					t.errors++
					if t.firstError == "" {
						t.firstError = err.Error()
					}
				case allowed:
					t.allowed++
				default:
					t.denied++
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	out := result{Target: target, Workers: workers, Seconds: elapsed}
	var all []time.Duration
	for _, t := range tallies {
		out.Allowed += t.allowed
		out.Denied += t.denied
		out.Errors += t.errors
		if out.FirstError == "" {
			out.FirstError = t.firstError
		}
		all = append(all, t.latencies...)
	}
	out.Decisions = out.Allowed + out.Denied
	out.PerSecond = float64(out.Decisions) / elapsed
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		pick := func(q float64) float64 {
			return float64(all[int(q*float64(len(all)-1))].Microseconds()) / 1000
		}
		out.P50Ms, out.P99Ms = pick(0.50), pick(0.99)
	}
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) == nil {
		out.ClientCPUMs = float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e6
	}
	line, _ := json.Marshal(out)
	return string(line)
}

func grpcDecide(address, domain, descriptor string) decide {
	parts := strings.SplitN(descriptor, "=", 2)
	if len(parts) != 2 {
		fmt.Fprintln(os.Stderr, "-descriptor must be key=value")
		os.Exit(2)
	}
	conn, err := grpc.Dial(address, grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	client := pb.NewRateLimitServiceClient(conn)
	request := &pb.RateLimitRequest{
		Domain: domain,
		Descriptors: []*pb_struct.RateLimitDescriptor{{
			Entries: []*pb_struct.RateLimitDescriptor_Entry{{Key: parts[0], Value: parts[1]}},
		}},
		HitsAddend: 1,
	}
	return func(ctx context.Context, _ int) (bool, error) {
		response, err := client.ShouldRateLimit(ctx, request)
		if err != nil {
			return false, err
		}
		return response.OverallCode == pb.RateLimitResponse_OK, nil
	}
}

// httpDecide keeps one HTTP/1.1 keep-alive connection per worker and
// writes each request as prepared bytes. Go's net/http client spends about
// twice the CPU per request of the gRPC client; on a small machine that
// would be taken from the server being measured.
func httpDecide(base string, keys []string, body string, workers int) decide {
	host := strings.TrimPrefix(strings.TrimRight(base, "/"), "http://")
	requests := make([][]byte, workers)
	for w := range requests {
		requests[w] = []byte(fmt.Sprintf("POST /rate-limit/check HTTP/1.1\r\nHost: %s\r\n"+
			"Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			host, keys[w%len(keys)], len(body), body))
	}
	conns := make([]*keepAlive, workers)
	return func(_ context.Context, worker int) (bool, error) {
		if conns[worker] == nil {
			conn, err := net.Dial("tcp", host)
			if err != nil {
				return false, err
			}
			conns[worker] = &keepAlive{conn: conn, reader: bufio.NewReader(conn)}
		}
		status, answer, err := conns[worker].exchange(requests[worker])
		if err != nil {
			conns[worker].conn.Close()
			conns[worker] = nil
			return false, err
		}
		switch status {
		case http.StatusOK:
			return true, nil
		case http.StatusTooManyRequests:
			return false, nil
		default:
			return false, fmt.Errorf("status %d: %.200s", status, answer)
		}
	}
}

type keepAlive struct {
	conn   net.Conn
	reader *bufio.Reader
}

// exchange writes one request and reads its answer: the status, and the
// body, whose length the Content-Length header gives.
func (k *keepAlive) exchange(request []byte) (int, []byte, error) {
	if _, err := k.conn.Write(request); err != nil {
		return 0, nil, err
	}
	line, err := k.reader.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	fields := strings.Fields(string(line))
	if len(fields) < 2 {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		line, err := k.reader.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		header := strings.TrimRight(string(line), "\r\n")
		if header == "" {
			break
		}
		name, value, _ := strings.Cut(header, ":")
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.Atoi(strings.TrimSpace(value)); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", value)
			}
		case "transfer-encoding":
			return 0, nil, fmt.Errorf("unexpected Transfer-Encoding %q", value)
		}
	}
	if length < 0 {
		return 0, nil, fmt.Errorf("answer %d without Content-Length", status)
	}
	answer := make([]byte, length)
	if _, err := io.ReadFull(k.reader, answer); err != nil {
		return 0, nil, err
	}
	return status, answer, nil
}
