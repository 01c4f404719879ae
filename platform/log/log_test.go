package log

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m))
		out = append(out, m)
	}
	return out
}

func TestRequestIDInEveryLine(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelInfo).With("service", "matcher")
	ctx := WithRequestID(context.Background(), "req-1")
	l.InfoContext(ctx, "first")
	l.WithGroup("g").InfoContext(ctx, "second", "k", 1)
	l.Info("no request")
	l.DebugContext(ctx, "hidden by level")

	got := lines(t, &buf)
	require.Len(t, got, 3)
	require.Equal(t, "req-1", got[0]["request_id"])
	require.Equal(t, "matcher", got[0]["service"])
	require.Equal(t, "req-1", got[1]["g"].(map[string]any)["request_id"], "request id inside a group")
	require.NotContains(t, got[2], "request_id")
}

func TestSanitizeRequestID(t *testing.T) {
	require.Equal(t, "abc-123", SanitizeRequestID("abc-123"))
	for _, bad := range []string{"", "has space", "new\nline", string(bytes.Repeat([]byte("a"), 200))} {
		got := SanitizeRequestID(bad)
		require.NotEqual(t, bad, got)
		require.Len(t, got, 36)
	}
}

func TestForServiceScopesToModule(t *testing.T) {
	var buf bytes.Buffer
	var inside, outside *slog.Logger
	app := fxtest.New(t,
		fx.Supply(New(&buf, slog.LevelInfo)),
		fx.Module("matcher", ForService("matcher"), fx.Invoke(func(l *slog.Logger) { inside = l })),
		fx.Invoke(func(l *slog.Logger) { outside = l }),
		fx.WithLogger(FxLogger),
	)
	app.RequireStart().RequireStop()
	buf.Reset()
	inside.Info("in")
	outside.Info("out")
	got := lines(t, &buf)
	require.Equal(t, "matcher", got[0]["service"])
	require.NotContains(t, got[1], "service")
}
