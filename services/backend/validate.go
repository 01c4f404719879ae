package backend

import (
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits on free text. Names are short; anything longer is a mistake or an attack.
const (
	maxNameLen         = 200
	maxURLLen          = 2000
	maxCustomFieldsLen = 16 << 10
	maxRequestIDLen    = 64
	maxImageBytes      = 10 << 20
	minPasswordLen     = 12
)

// checkText validates a free-text field: valid UTF-8, no NUL or other control
// characters (PostgreSQL rejects NUL in text, and they have no place in names),
// at most max characters, at least one when required.
func checkText(field, v string, required bool, max int) error {
	if !utf8.ValidString(v) {
		return invalid(field, "not valid UTF-8")
	}
	if required && strings.TrimSpace(v) == "" {
		return invalid(field, "required")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return invalid(field, "%d characters, at most %d allowed", n, max)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return invalid(field, "control characters are not allowed")
		}
	}
	return nil
}

// parseID parses a resource id (a UUID). A malformed id is InvalidArgument.
func parseID(field, v string) (uuid.UUID, error) {
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		if v == "" {
			return uuid.Nil, invalid(field, "required")
		}
		return uuid.Nil, invalid(field, "not a valid id")
	}
	return id, nil
}

// parseIDs parses a list of ids, dropping duplicates.
func parseIDs(field string, vs []string) ([]uuid.UUID, error) {
	seen := map[uuid.UUID]bool{}
	out := make([]uuid.UUID, 0, len(vs))
	for _, v := range vs {
		id, err := parseID(field, v)
		if err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

func checkColor(field, v string) error {
	if v != "" && !colorRE.MatchString(v) {
		return invalid(field, "want #rrggbb")
	}
	return nil
}

func checkThreshold(field string, v float32) error {
	if v < 0 || v > 1 || v != v {
		return invalid(field, "must be within 0..1")
	}
	return nil
}

func checkHTTPURL(field, v string) error {
	if err := checkText(field, v, true, maxURLLen); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(field, "want an http:// or https:// URL")
	}
	return nil
}

func checkEmail(field, v string) error {
	if err := checkText(field, v, true, maxNameLen); err != nil {
		return err
	}
	at := strings.LastIndexByte(v, '@')
	if at < 1 || at == len(v)-1 || strings.ContainsAny(v, " \t") {
		return invalid(field, "not an email address")
	}
	return nil
}
