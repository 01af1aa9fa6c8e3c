package service

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/httpserver"
)

// startOrderService runs the order service in-process on a fresh database and
// fresh topics with the given HTTP limits, and returns its address once /readyz
// answers 200. The test's cleanup stops it.
func startOrderService(t *testing.T, requestTimeout time.Duration, limits httpserver.Config) string {
	t.Helper()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	kc := testenv.Kafka(t)
	topics := testenv.Topics(t, kc, 1, "orders", "payments", "order-poison", "payment-poison")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := DefaultConfig()
	cfg.HTTPAddr, cfg.RequestTimeout, cfg.HTTP = addr, requestTimeout, limits
	cfg.OrdersTopic, cfg.PaymentsTopic, cfg.PaymentPoisonTopic = topics[0], topics[1], topics[3]
	cfg.Messaging.DB = d.DBConfig() // migrates as the migration user, runs as the service user
	cfg.Messaging.Kafka = kc
	cfg.Messaging.PoisonTopic = topics[2]
	cfg.Messaging.ConsumerGroup = testenv.Group(t, kc, "order")
	cfg.Stop.DrainTimeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service.Run: %v", err)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the order service stopped during start-up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the order service did not become ready within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trickle connects to addr, sends head at once and then rest one byte per
// second until the server hangs up or stop is closed. It returns how long the
// server kept the connection, and what it answered (the status line, if any).
func trickle(addr, head, rest string, stop <-chan struct{}) (time.Duration, string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, "", err
	}
	closed := make(chan string, 1)
	go func() {
		status, _ := bufio.NewReader(conn).ReadString('\n')
		_, _ = io.Copy(io.Discard, conn) // until the server closes the connection
		closed <- strings.TrimSpace(status)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case status := <-closed:
			return time.Since(start), status, nil
		case <-stop:
			return time.Since(start), "", nil
		case <-tick.C:
			if i < len(rest) {
				_, _ = conn.Write([]byte{rest[i]})
			}
		}
	}
}

const orderBody = `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`

// TestSlowClientsAreDisconnected: a client that sends its headers, or its body,
// one byte per second is disconnected within the bound (the read header
// timeout, and the request timeout for the body even though the read timeout is
// much longer); a header block over 16 KiB gets 431, one under it does not.
func TestSlowClientsAreDisconnected(t *testing.T) {
	const requestTimeout = 2 * time.Second
	limits := httpserver.Config{ReadHeaderTimeout: time.Second, ReadTimeout: 60 * time.Second, WriteTimeout: 10 * time.Second}
	addr := startOrderService(t, requestTimeout, limits)
	never := make(chan struct{})

	t.Run("slow headers", func(t *testing.T) {
		took, _, err := trickle(addr, "POST /orders HTTP/1.1\r\n", "Host: localhost\r\nContent-Type: application/json\r\n\r\n", never)
		if err != nil {
			t.Fatal(err)
		}
		if bound := limits.ReadHeaderTimeout + 2*time.Second; took > bound {
			t.Fatalf("a client sending its headers at 1 byte/s kept its connection %s, want it cut within %s", took, bound)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		head := fmt.Sprintf("POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(orderBody))
		took, status, err := trickle(addr, head, orderBody, never)
		if err != nil {
			t.Fatal(err)
		}
		if bound := requestTimeout + 2*time.Second; took > bound {
			t.Fatalf("a client sending its body at 1 byte/s kept its connection %s (answer %q), want it cut within %s", took, status, bound)
		}
		if !strings.Contains(status, "408") {
			t.Errorf("answer to the slow body = %q, want 408", status)
		}
	})
	for _, tt := range []struct {
		name       string
		headerSize int
		want431    bool
	}{
		{"header block of 17 KiB", 17 << 10, true},
		{"header block of 14 KiB", 14 << 10, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
			req.Header.Set("X-Padding", strings.Repeat("a", tt.headerSize))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge; got != tt.want431 {
				t.Fatalf("status = %d, want 431: %v", resp.StatusCode, tt.want431)
			}
		})
	}
}

// TestSlowClientsDoNotStopOrders: 200 clients that send their requests one byte
// per second (reconnecting when cut off) while normal clients place orders:
// every normal order is accepted.
func TestSlowClientsDoNotStopOrders(t *testing.T) {
	addr := startOrderService(t, 2*time.Second, httpserver.Config{ReadHeaderTimeout: time.Second, ReadTimeout: 3 * time.Second})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	head := fmt.Sprintf("POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(orderBody))
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 { // half trickle their headers, half their body
					_, _, _ = trickle(addr, "POST /orders HTTP/1.1\r\n", "Host: localhost\r\n\r\n", stop)
				} else {
					_, _, _ = trickle(addr, head, orderBody, stop)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	client := &http.Client{Timeout: 30 * time.Second}
	for i := range 20 {
		resp, err := client.Post("http://"+addr+"/orders", "application/json", strings.NewReader(orderBody))
		if err != nil {
			t.Fatalf("order %d with 200 slow clients connected: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("order %d with 200 slow clients connected: status %d, want 201", i, resp.StatusCode)
		}
	}
}

// TestKeepAliveConnectionOutlivesALongRequest: a request that outlives the
// request timeout (the console's event stream, which ends with it) does not
// spoil its keep-alive connection: the next request on it is served, not
// refused with a 500 for a canceled context (golang/go#70834).
func TestKeepAliveConnectionOutlivesALongRequest(t *testing.T) {
	const requestTimeout = 300 * time.Millisecond
	addr := startOrderService(t, requestTimeout, httpserver.Config{})
	// One connection, reused by every request.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i := range 3 {
		resp, err := client.Get("http://" + addr + "/console/events")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // the stream ends with the request timeout
		resp.Body.Close()
		next, err := client.Get("http://" + addr + "/orders/no-such-order")
		if err != nil {
			t.Fatal(err)
		}
		next.Body.Close()
		if next.StatusCode != http.StatusNotFound {
			t.Fatalf("round %d: the request after the event stream, on its connection: %d, want 404", i, next.StatusCode)
		}
	}
}
