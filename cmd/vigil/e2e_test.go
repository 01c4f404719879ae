package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/gateway"
	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	"github.com/vigilhq/vigil/platform/dbtest"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is `vigil all` running as a child process.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	public, http   string
	dbURL          string
	exited         chan error
}

func startVigilAll(t *testing.T) *process {
	t.Helper()
	start := time.Now()
	d := dbtest.New(t)
	t.Logf("%s: fresh database", time.Since(start))
	p := &process{
		stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan error, 1),
		public: freePort(t), http: freePort(t), dbURL: d.URL,
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") || strings.HasPrefix(kv, "VIGIL_ORT_LIB=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		envRunMain+"=1",
		"VIGIL_PUBLIC_LISTEN="+p.public,
		"VIGIL_HTTP_LISTEN="+p.http,
		"VIGIL_GRPC_LISTEN="+freePort(t),
		"VIGIL_DATABASE_URL="+d.URL,
		"VIGIL_DATA_DIR="+t.TempDir(),
		"VIGIL_GATEWAY_MAX_BODY_BYTES=1048576",
		"VIGIL_SHUTDOWN_TIMEOUT=20s",
		// The machine's Redis: pub/sub crosses the process boundary, so the test can publish.
		"VIGIL_REDIS_ADDR="+redisAddr,
	)
	p.cmd = exec.Command(os.Args[0], "all", "--log-level", "info")
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	t.Logf("%s: process started", time.Since(start))
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("vigil stdout:\n%s", p.stdout.String())
			t.Logf("vigil warnings and errors:\n%s", notable(p.stderr.String()))
			t.Logf("vigil stderr (last 20 KiB):\n%s", tail(p.stderr.String(), 20<<10))
		}
	})
	require.Eventually(t, func() bool {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("vigil all exited during start: %v", err)
		default:
		}
		resp, err := quick.Get("http://" + p.public + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 2*time.Minute, 50*time.Millisecond, "vigil all answers /healthz on the public port")
	t.Logf("%s: healthy", time.Since(start))
	return p
}

// quick is a client for polling: a hung attempt must not stall the poll.
var quick = &http.Client{Timeout: 2 * time.Second}

// notable keeps the log lines worth reading after a failure: warnings, errors, and
// requests that failed or took over a second.
func notable(logs string) string {
	var out strings.Builder
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		status, _ := m["status"].(float64)
		dur, _ := m["duration"].(float64) // the lb logs nanoseconds
		if m["level"] == "WARN" || m["level"] == "ERROR" || status >= 500 || dur > 1e9 {
			out.WriteString(l + "\n")
		}
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// logLine finds the first JSON log line with msg and decodes it.
func (p *process) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no %q log line", msg)
	return nil
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) do(method, path, contentType string, body io.Reader) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	require.NoError(c.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	var out map[string]any
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(c.t, json.Unmarshal(raw, &out), string(raw))
	}
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

func (c client) json(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	return c.do(method, path, "application/json", strings.NewReader(body))
}

var adminPassword = regexp.MustCompile(`admin password:\s+(\S+)`)

// TestVigilAllEndToEnd is the foundation's acceptance test: the real binary, the real
// PostgreSQL, real sockets, every component.
func TestVigilAllEndToEnd(t *testing.T) {
	p := startVigilAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// gRPC health SERVING for every registered service, through the public port (h2c).
	services := p.logLine(t, "grpc serving")["services"].([]any)
	require.GreaterOrEqual(t, len(services), len(components))
	conn, err := grpc.NewClient(p.public, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	for _, s := range append([]any{""}, services...) {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: s.(string)})
		require.NoError(t, err, s)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status, s)
	}

	// Sign in as the first admin, whose password the first start printed once.
	var password string
	require.Eventually(t, func() bool {
		m := adminPassword.FindStringSubmatch(p.stdout.String())
		if m != nil {
			password = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond)
	c := client{t: t, base: "http://" + p.public}
	code, login := c.json(http.MethodPost, "/v1/auth:login", fmt.Sprintf(`{"email":"admin@vigil.local","password":%q}`, password))
	require.Equal(t, http.StatusOK, code, login)
	c.token = login["sessionToken"].(string)

	// Persons: create, get, list with paging, delete, all through REST, stored in PostgreSQL.
	var ids []string
	for i := range 3 {
		code, out := c.json(http.MethodPost, "/v1/persons", fmt.Sprintf(`{"name":"E2E Person %d","externalId":"e2e-%d"}`, i, i))
		require.Equal(t, http.StatusOK, code, out)
		ids = append(ids, out["person"].(map[string]any)["id"].(string))
	}
	code, got := c.json(http.MethodGet, "/v1/persons/"+ids[1], "")
	require.Equal(t, http.StatusOK, code, got)
	require.Equal(t, "E2E Person 1", got["person"].(map[string]any)["name"])

	// The same REST call over HTTP/2 without TLS (h2c, as `curl
	// --http2-prior-knowledge` sends it): the lb's HTTP/2 engine proxies
	// it to the gateway, on the port gRPC clients use.
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer h2c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/persons/"+ids[1], nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := (&http.Client{Transport: h2c}).Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "HTTP/2.0", resp.Proto)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	require.Contains(t, string(raw), "E2E Person 1")

	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		require.Less(t, page, 5, "paging ends")
		code, out := c.json(http.MethodGet, "/v1/persons?pageSize=2&pageToken="+token, "")
		require.Equal(t, http.StatusOK, code, out)
		persons := out["persons"].([]any)
		require.LessOrEqual(t, len(persons), 2)
		for _, x := range persons {
			seen[x.(map[string]any)["id"].(string)] = true
		}
		token, _ = out["nextPageToken"].(string)
		if token == "" {
			break
		}
	}
	for _, id := range ids {
		require.True(t, seen[id], "listed %s", id)
	}
	db, err := pgx.Connect(ctx, p.dbURL)
	require.NoError(t, err)
	defer db.Close(context.Background())
	var stored int
	require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM persons WHERE name LIKE 'E2E Person %'").Scan(&stored))
	require.Equal(t, 3, stored, "the persons are rows in PostgreSQL")

	// An S3 object round trip: a photo goes into the embedded object store and comes back.
	photo, err := os.ReadFile("../../testdata/faces/obama_1.jpg")
	require.NoError(t, err)
	code, added := c.json(http.MethodPost, "/v1/persons/"+ids[0]+"/photos",
		fmt.Sprintf(`{"image":%q}`, base64.StdEncoding.EncodeToString(photo)))
	require.Equal(t, http.StatusOK, code, added)
	photoID := added["photo"].(map[string]any)["id"].(string)
	code, img := c.json(http.MethodGet, "/v1/persons/"+ids[0]+"/photos/"+photoID+"/image", "")
	require.Equal(t, http.StatusOK, code, img)
	back, err := base64.StdEncoding.DecodeString(img["image"].(string))
	require.NoError(t, err)
	require.Equal(t, photo, back, "the stored photo comes back byte for byte")

	code, out := c.json(http.MethodDelete, "/v1/persons/"+ids[2], "")
	require.Equal(t, http.StatusOK, code, out)
	code, out = c.json(http.MethodGet, "/v1/persons/"+ids[2], "")
	require.Equal(t, http.StatusNotFound, code, out)

	// Bad input: 400 naming the field, never 500.
	badInput := []struct {
		name, body, field string
	}{
		{"malformed json", `{"name": "x"`, ""},
		{"unknown field", `{"name":"x","shoeSize":42}`, "shoeSize"},
		{"missing required field", `{"externalId":"no-name"}`, "name"},
		{"wrong type", `{"name":12}`, "name"},
		{"oversize body", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, ""},
	}
	for _, b := range badInput {
		code, out := c.json(http.MethodPost, "/v1/persons", b.body)
		require.Equal(t, http.StatusBadRequest, code, "%s: %v", b.name, out)
		require.Contains(t, fmt.Sprint(out["message"]), b.field, b.name)
	}

	// The documents and metrics.
	code, doc := c.do(http.MethodGet, "/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, doc["paths"], "/v1/persons")
	code, metrics := c.do(http.MethodGet, "/metrics", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, metrics["raw"], `vigil_grpc_server_handled_total{code="OK",method="/vigil.backend.v1.PersonService/CreatePerson"} 3`)
	require.Contains(t, metrics["raw"], "lb_requests_total")

	// A Kafka message round trip through the process's in-process broker.
	brokers := p.logLine(t, "in-process kafka started")["brokers"].([]any)
	addr := brokers[0].(string)
	kc := &kafkago.Client{Addr: kafkago.TCP(addr)}
	_, err = kc.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: "vigil.e2e.v1", NumPartitions: 1, ReplicationFactor: 1}}})
	require.NoError(t, err)
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "vigil.e2e.v1", RequiredAcks: kafkago.RequireAll}
	require.NoError(t, w.WriteMessages(ctx, kafkago.Message{Value: []byte("hello from e2e")}))
	require.NoError(t, w.Close())
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, GroupID: "e2e", Topic: "vigil.e2e.v1", MaxWait: 100 * time.Millisecond})
	m, err := r.FetchMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello from e2e", string(m.Value))
	require.NoError(t, r.CommitMessages(ctx, m))
	require.NoError(t, r.Close())

	// A live notification: published on Redis as the event service does, relayed by the
	// gateway's WebSocket through the load balancer.
	liveNotification(ctx, t, c, login["workspaceId"].(string))

	// SIGHUP, which operators send to reload: the process says what it
	// reloads (only the license) and goes on serving.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(p.stderr.String(), "SIGHUP: the licensing component reloads the license file")
	}, 10*time.Second, 20*time.Millisecond)
	code, got = c.json(http.MethodGet, "/v1/persons/"+ids[1], "")
	require.Equal(t, http.StatusOK, code, got)

	// SIGTERM while a request is in flight: the request completes, the process exits 0.
	sigtermDuringRequest(t, p, c)
}

const redisAddr = "127.0.0.1:6379"

func liveNotification(ctx context.Context, t *testing.T, c client, workspace string) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	require.NoError(t, rdb.Ping(ctx).Err(), "the machine's Redis (make test starts one)")

	url := strings.Replace(c.base, "http://", "ws://", 1) + gateway.NotificationsPath + "?kinds=identification&access_token=" + c.token
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()

	note := &eventservicev1.Notification{WorkspaceId: workspace, NotificationId: "e2e-note",
		Kind: &eventservicev1.Notification_Identification{Identification: &eventservicev1.IdentificationNotification{
			Event: &eventservicev1.Event{EventId: "e2e-note", WorkspaceId: workspace, CameraId: "cam-1"}}}}
	raw, err := proto.Marshal(note)
	require.NoError(t, err)
	require.NoError(t, rdb.Publish(ctx, gateway.NotifyChannel(workspace), raw).Err())

	_, data, err := ws.Read(ctx)
	require.NoError(t, err)
	var resp eventservicev1.StreamNotificationsResponse
	require.NoError(t, protojson.Unmarshal(data, &resp))
	require.Equal(t, "e2e-note", resp.GetNotification().GetNotificationId())
	require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
}

// sigtermDuringRequest starts a create-person request whose body is only half sent,
// signals the process, checks the public port refuses new connections, sends the rest
// of the body, and expects the person created and a clean exit.
func sigtermDuringRequest(t *testing.T, p *process, c client) {
	body := []byte(`{"name":"Created During Shutdown"}`)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, c.base+"/v1/persons", pr)
	require.NoError(t, err)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(b), err: err}
	}()
	_, err = pw.Write(body[:10])
	require.NoError(t, err)
	// A stream through the front door that never ends (as an agent's): the lb's drain
	// gives up on it at shutdown_timeout, and the stop still runs every other hook.
	conn, err := grpc.NewClient(p.public, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	watch, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = watch.Recv()
	require.NoError(t, err)
	// The request is in the gateway once it counts two in flight (it and the scrape).
	require.Eventually(t, func() bool { return gatewayInFlight(t, p.http) >= 2 }, 30*time.Second, 10*time.Millisecond)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", p.public, 100*time.Millisecond)
		if err != nil {
			return true
		}
		_ = conn.Close()
		return false
	}, 30*time.Second, 10*time.Millisecond, "the public port stops accepting")

	_, err = pw.Write(body[10:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Contains(t, r.body, "Created During Shutdown")

	select {
	case err := <-p.exited:
		require.NoError(t, err, "exit status 0")
		require.Equal(t, 0, p.cmd.ProcessState.ExitCode())
	case <-time.After(60 * time.Second):
		t.Fatal("vigil all did not exit after SIGTERM")
	}
}

var inFlightLine = regexp.MustCompile(`(?m)^vigil_gateway_in_flight_requests (\d+)`)

func gatewayInFlight(t *testing.T, addr string) int {
	resp, err := quick.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := inFlightLine.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
