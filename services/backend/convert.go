package backend

import (
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tsPtr(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func strPtr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func idStrings(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func boxOf(v []float32) *commonv1.Box {
	if len(v) != 4 {
		return nil
	}
	return &commonv1.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}
}

// maskPaths returns the set of paths of an update mask, checked against allowed; an
// empty mask means every allowed path.
func maskPaths(m *fieldmaskpb.FieldMask, allowed ...string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(m.GetPaths()) == 0 {
		for _, p := range allowed {
			out[p] = true
		}
		return out, nil
	}
	ok := map[string]bool{}
	for _, p := range allowed {
		ok[p] = true
	}
	for _, p := range m.GetPaths() {
		// REST clients name fields as in JSON ("customFields"); gRPC ones as in the proto.
		sp := snakeCase(p)
		if !ok[sp] {
			return nil, invalid("update_mask", "unknown or read-only path %q", p)
		}
		out[sp] = true
	}
	return out, nil
}

// snakeCase turns a lowerCamel JSON path ("settings.retentionDays") into the proto's
// ("settings.retention_days"); snake_case input is returned unchanged.
func snakeCase(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			b.WriteRune(r + ('a' - 'A'))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
