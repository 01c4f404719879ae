package lb

import (
	"bufio"
	"bytes"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The fast HTTP/1.x loop parses only a strict subset of request heads
// itself: the plain, well-formed requests that make up nearly all
// traffic. Everything else goes whole to net/http, which then answers it
// exactly as it always did (400, 431, 501, chunked bodies, upgrades,
// h2c). The subset is chosen so that wherever parseH1Head accepts a
// head, net/http reads the same request from it (FuzzH1Head checks this
// against http.ReadRequest).

// scanH1Head finds the end of the head at the start of b. It returns the
// head's length through its blank line, 0 when the head is incomplete, or
// -1 when the head cannot be on the fast path (a bare LF line ending or a
// leading blank line): then there is no use waiting for more.
func scanH1Head(b []byte) int {
	i := 0
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		j += i
		if j == i || b[j-1] != '\r' {
			return -1
		}
		if j == i+1 {
			if i == 0 {
				return -1
			}
			return j + 1
		}
		i = j + 1
	}
}

// requestHead is what parseH1Head keeps of a client's request head for
// the upstream transport to relay its field lines as they came
// (writeRequestHead) instead of writing the header map out again.
type requestHead struct {
	lines     fieldLines // less Host, Content-Length and Connection
	keys      int        // names in the parsed header
	hasConn   bool       // the request has these fields
	hasUA     bool       //
	hasReqID  bool       // one X-Request-Id the proxy keeps (proxy.go: 1 to 200 bytes)
	relayable bool       // the lines may be relayed (see parseH1Head)
}

// fieldLines are a head's field lines, to relay as they came less some of
// them (the head is a string: its values are substrings of it).
type fieldLines struct {
	s         string
	at, end   int // s[at:end] are the field lines, each ending in CRLF
	skip      [4][2]int
	nskip     int
	overflown bool // more lines to leave out than skip holds
}

// leaveOut marks the line s[pos:next] to be left out.
func (l *fieldLines) leaveOut(pos, next int) {
	if l.nskip == len(l.skip) {
		l.overflown = true
		return
	}
	l.skip[l.nskip] = [2]int{pos, next}
	l.nskip++
}

// writeTo writes the lines but those left out.
func (l *fieldLines) writeTo(bw *bufio.Writer) {
	at := l.at
	for _, sk := range l.skip[:l.nskip] {
		bw.WriteString(l.s[at:sk[0]])
		at = sk[1]
	}
	bw.WriteString(l.s[at:l.end])
}

// parseH1Head parses a complete head (as delimited by scanH1Head) into
// req; a req.Header already set is an empty map to parse the fields into.
// It returns false, leaving req in an unspecified state, when the head is
// outside the subset the fast loop serves. rh, when not nil, gets what
// relaying the head's field lines upstream takes.
func parseH1Head(s string, req *http.Request, u *url.URL, rh *requestHead) bool {
	if rh != nil {
		rh.relayable = false
	}
	// s is the whole head: every method, target and header value below
	// is a substring of it, so parsing allocates no strings for them
	// (the fast loop makes s in storage it reuses, headString).
	// Lines end in CRLF (scanH1Head made sure every LF has its CR); a
	// stray CR inside a line fails the byte checks below.
	lineEnd := strings.IndexByte(s, '\n') - 1
	if lineEnd < 0 {
		return false
	}
	line := s[:lineEnd]
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 {
		return false
	}
	method := line[:sp1]
	for i := 0; i < len(method); i++ {
		if !isTokenByte(method[i]) {
			return false
		}
	}
	if method == "CONNECT" || method == "PRI" {
		return false
	}
	rest := line[sp1+1:]
	sp2 := strings.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return false
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	minor := 0
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return false
	}
	if !parseOriginForm(target, u) {
		return false
	}

	// Room for what the proxy adds: X-Request-Id, X-Forwarded-For,
	// -Proto, -Host and User-Agent (forwardHeader), so the map never grows.
	var hb headerBuilder
	newHeader(&hb, s, 5, req.Header)
	h := hb.h
	host, hosts := "", 0
	cl := int64(0)
	hasCL := false
	// What relaying the field lines needs (requestHead): the lines the
	// transport writes itself (Host, Content-Length) and those the proxy
	// removes (Connection naming no field but keep-alive or close, which
	// browsers send) are left out, and a request with another field the
	// proxy replaces, merges or removes is not relayed: X-Forwarded-For,
	// -Proto and -Host, other hop-by-hop fields, Trailer (writeRequestHead drops
	// it), a second or empty User-Agent (it sends the first, and no empty
	// one), an X-Request-Id the proxy replaces.
	var rel requestHead
	rel.lines = fieldLines{s: s, at: lineEnd + 2}
	relayable, reqIDs := true, 0
	for pos := lineEnd + 2; ; {
		name, value, next, done, ok := nextField(s, pos)
		if !ok {
			return false
		}
		if done {
			rel.lines.end = pos
			break
		}
		key := canonicalKey(name)
		switch key {
		case "Connection":
			relayable = relayable && namesNoField(value)
			rel.hasConn = true
			fallthrough
		case "Host", "Content-Length":
			rel.lines.leaveOut(pos, next)
		case "User-Agent":
			// The transport sends no empty one (it keeps Go's out).
			relayable = relayable && !rel.hasUA && value != ""
			rel.hasUA = true
		case "X-Request-Id":
			reqIDs++
			rel.hasReqID = reqIDs == 1 && value != "" && len(value) <= 200
		case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Trailer":
			relayable = false
		default:
			if isHopHeader(key) {
				relayable = false
			}
		}
		pos = next
		switch key {
		case "Host":
			hosts++
			host = value
			continue // net/http keeps Host out of the header map too
		case "Content-Length":
			if hasCL || !parseDecimal(value, &cl) {
				return false
			}
			hasCL = true
		case "Transfer-Encoding", "Upgrade", "Expect", "Http2-Settings":
			return false
		}
		hb.add(key, value)
	}
	if (reqIDs > 0 && !rel.hasReqID) || rel.lines.overflown {
		relayable = false
	}
	if hosts > 1 || (hosts == 0 && minor == 1) || (hosts == 1 && !httpguts.ValidHostHeader(host)) {
		return false
	}
	conn := h["Connection"]
	if conn != nil && httpguts.HeaderValuesContainsToken(conn, "upgrade") {
		return false
	}
	if hp, ok := h["Pragma"]; ok && len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
			relayable = false // a field the lines lack
		}
	}
	if rh != nil && relayable {
		rel.keys, rel.relayable = len(h), true
		*rh = rel
	}

	req.Method = method
	req.URL = u
	req.Proto = proto
	req.ProtoMajor, req.ProtoMinor = 1, minor
	req.Header = h
	req.Host = host
	req.RequestURI = target
	req.ContentLength = cl
	hasClose := conn != nil && httpguts.HeaderValuesContainsToken(conn, "close")
	if minor == 0 {
		req.Close = hasClose || conn == nil || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	} else {
		req.Close = hasClose
	}
	return true
}

// headerBuilder fills a head's header map: it was empty when the
// builder got it (newHeader), and all values share one backing array.
type headerBuilder struct {
	h    http.Header
	vals []string
	// The keys added so far, while they fit: a repeated key is found here
	// rather than by a map lookup before every insert, which halves the
	// map work of a head whose keys are all different (nearly all).
	keys  [16]string
	nkeys int
}

// newHeader makes the builder of a head's header map, with room for
// extra more keys, and one backing array for its values, so that a header
// costs no allocation of its own. spare, when not nil, is an empty map to
// use instead (the fast loop reuses its maps; see h1ResponseWriter.recycle).
func newHeader(b *headerBuilder, head string, extra int, spare http.Header) {
	lines := max(strings.Count(head, "\n")-2, 0)
	b.h, b.nkeys = spare, 0
	if spare == nil {
		b.h = make(http.Header, lines+extra)
	}
	b.vals = make([]string, 0, lines)
}

// add adds a value under key, taking its slice from the backing array
// (each key's slice is capped, so appending a second value copies instead
// of overwriting a neighbour).
func (b *headerBuilder) add(key, value string) {
	h := b.h
	if b.nkeys < len(b.keys) {
		for _, k := range b.keys[:b.nkeys] {
			if k == key {
				h[key] = append(h[key], value)
				return
			}
		}
		b.keys[b.nkeys] = key
		b.nkeys++
	} else if vv, ok := h[key]; ok {
		h[key] = append(vv, value)
		return
	}
	if len(b.vals) == cap(b.vals) {
		h[key] = []string{value}
		return
	}
	i := len(b.vals)
	b.vals = append(b.vals, value)
	h[key] = b.vals[i : i+1 : i+1]
}

// parseOriginForm parses a request target as url.ParseRequestURI does,
// for origin-form targets ("/path?query") only. Targets made of plain
// characters are split without it (no escaping to undo, so Path is the
// raw path and RawPath stays empty); the rest go through it.
func parseOriginForm(target string, u *url.URL) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := target, "", false
	plain := true
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		if c == '?' && !hasQuery {
			path, query, hasQuery = target[:i], target[i+1:], true
			continue
		}
		if !hasQuery && !plainPathByte(c) {
			plain = false
		}
	}
	if plain && (!hasQuery || query != "") {
		*u = url.URL{Path: path, RawQuery: query}
		return true
	}
	parsed, err := url.ParseRequestURI(target)
	if err != nil {
		return false
	}
	*u = *parsed
	return true
}

// plainPathByte: bytes that url.URL.EscapedPath leaves as they are, so
// a path of them needs no RawPath.
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}

func isTokenByte(c byte) bool {
	return c < 0x80 && httpguts.IsTokenRune(rune(c))
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseDecimal parses a Content-Length as net/http does (digits only,
// below 2^63), limited to 18 digits so it cannot overflow.
func parseDecimal(s string, n *int64) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		v = v*10 + int64(c-'0')
	}
	*n = v
	return true
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey for a valid token,
// without allocating when the name is already canonical (what nearly all
// clients send) or is a common one.
func canonicalKey(name string) string {
	upper := true
	canonical := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
			break
		}
		upper = c == '-'
	}
	if canonical {
		return name
	}
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(name)
	}
	b := buf[:len(name)]
	upper = true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonHeaderKeys[string(b)]; ok {
		return k
	}
	return string(b)
}

var commonHeaderKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Host", "If-Modified-Since",
		"If-None-Match", "Origin", "Pragma", "Referer", "Traceparent", "Tracestate", "Upgrade",
		"User-Agent", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
		"Te", "Transfer-Encoding", "Expect", "Keep-Alive", "Grpc-Timeout", "Content-Encoding",
	} {
		m[k] = k
	}
	return m
}()

// readResponse reads an upstream's response head from br. Plain heads
// (a 2xx-5xx status other than 204 and 304, valid header lines, exactly
// one valid Content-Length, no Transfer-Encoding, Pragma or Trailer, not
// an answer to HEAD) are parsed here, like request heads, from one
// string; the rest go to http.ReadResponse, which reads them from the
// same position, since this only peeks until it has decided.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	return readResponseInto(br, req, new(h1Response))
}

// h1Response holds a response parsed here and its body readers, so that
// they cost one allocation together.
type h1Response struct {
	res   http.Response
	sized sizedBody
	conn  h1Body // the transport's wrapper (h1transport.go)
	// hdr, when not nil, is an empty map for the header (reused, see
	// borrowAnswer); the next parse takes it.
	hdr http.Header
	// hop: what hop-by-hop fields the head has, when parsed here.
	hop hopFields
	// head: the head as it came, for relaying its fields unchanged
	// (h1ResponseWriter.relayHead), when parsed here.
	head answerHead
}

// answerHead is what parseResponseHead keeps of an upstream answer's head
// for the fast loop's writer to relay its field lines as they came
// (writeRelayedHead) instead of writing the header map out again: that
// takes a pass over the map, a sort and a write per field, about a
// twentieth of the CPU a proxied request costs.
type answerHead struct {
	lines     fieldLines // less the Connection lines
	keys      int        // distinct names in the parsed header
	hasConn   bool       // the parsed header kept a Connection field
	hasDate   bool       // the answer has these fields
	hasType   bool       //
	hasReqID  bool       //
	clen      int64      // its Content-Length
	relayable bool       // the lines may be relayed: none is left out but Connection's
}

// hopFields tells respond what removing an answer's hop-by-hop fields
// takes (stripHop). Almost every answer has none, or only "Connection:
// keep-alive": then a pass over the header (removeHopHeaders, 2 % of the
// CPU per request) is not needed.
type hopFields uint8

const (
	hopUnknown        hopFields = iota // not parsed here: removeHopHeaders
	hopNone                            // no hop-by-hop field
	hopConnectionOnly                  // only Connection, naming nothing but keep-alive or close
	hopOther                           // anything else: removeHopHeaders
)

// readResponseInto is readResponse with x as the storage of a response
// parsed here (one from http.ReadResponse does not use it).
func readResponseInto(br *bufio.Reader, req *http.Request, x *h1Response) (*http.Response, error) {
	n := 0
	for {
		buf, err := br.Peek(max(br.Buffered(), 1))
		if err != nil {
			return http.ReadResponse(br, req)
		}
		if n = scanH1Head(buf); n != 0 {
			break
		}
		if len(buf) >= br.Size() {
			return http.ReadResponse(br, req)
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return http.ReadResponse(br, req)
		}
	}
	x.hop = hopUnknown
	if n < 0 {
		return http.ReadResponse(br, req)
	}
	head, _ := br.Peek(n)
	if req.Method == http.MethodHead {
		return readResponseNamed(br, req, head)
	}
	res := &x.res
	*res = http.Response{Request: req, Header: x.hdr}
	x.hdr = nil
	ok, hop := parseResponseHead(head, res, &x.head)
	if !ok {
		return readResponseNamed(br, req, head)
	}
	x.hop = hop
	br.Discard(n)
	if res.ContentLength == 0 {
		res.Body = http.NoBody
	} else {
		x.sized = sizedBody{br: br, remain: res.ContentLength}
		res.Body = &x.sized
	}
	return res, nil
}

// readResponseNamed is http.ReadResponse for an answer whose whole head
// is buffered, less the fields its Connection names: the reader deletes
// a Connection that says close, names and all, and removeHopHeaders
// would then find no names to remove (RFC 9110 section 7.6.1).
func readResponseNamed(br *bufio.Reader, req *http.Request, head []byte) (*http.Response, error) {
	named := connectionNamed(string(head)) // copied: the read reuses the buffer
	res, err := http.ReadResponse(br, req)
	if err == nil {
		for _, k := range named {
			res.Header.Del(k)
		}
	}
	return res, err
}

// connectionNamed returns the fields a head's Connection lines name, less
// close and keep-alive, as far as its lines are well formed.
func connectionNamed(s string) []string {
	var named []string
	for pos := strings.IndexByte(s, '\n') + 1; pos > 0 && pos < len(s); {
		name, value, next, done, ok := nextField(s, pos)
		if !ok || done {
			break
		}
		if strings.EqualFold(name, "Connection") {
			for t := range connectionNames(value) {
				named = append(named, strings.Clone(t))
			}
		}
		pos = next
	}
	return named
}

// parseResponseHead parses a complete response head into res; a
// res.Header already set is an empty map to parse the fields into. hop
// says which hop-by-hop fields it has (isHopHeader). ah, when not nil,
// gets what relaying the head's lines as they came takes.
func parseResponseHead(head []byte, res *http.Response, ah *answerHead) (ok bool, hop hopFields) {
	if ah != nil {
		ah.relayable = false
	}
	s := string(head)
	lineEnd := strings.IndexByte(s, '\n') - 1
	if lineEnd < 12 {
		return false, hopUnknown
	}
	line := s[:lineEnd]
	switch line[:9] {
	case "HTTP/1.1 ":
		res.ProtoMinor = 1
	case "HTTP/1.0 ":
	default:
		return false, hopUnknown
	}
	res.Proto, res.ProtoMajor = line[:8], 1
	status := line[9:]
	if len(status) < 4 || status[3] != ' ' {
		return false, hopUnknown
	}
	code := 0
	for i := 0; i < 3; i++ {
		c := status[i]
		if c < '0' || c > '9' {
			return false, hopUnknown
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return false, hopUnknown
	}
	for i := 4; i < len(status); i++ {
		if c := status[i]; c < ' ' || c >= 0x7f {
			return false, hopUnknown
		}
	}
	res.StatusCode, res.Status = code, status

	var hb headerBuilder
	newHeader(&hb, s, 0, res.Header)
	h := hb.h
	hasCL, other := false, false
	var rel answerHead
	rel.lines = fieldLines{s: s, at: lineEnd + 2}
	for pos := lineEnd + 2; ; {
		name, value, next, done, ok := nextField(s, pos)
		if !ok {
			return false, hopUnknown
		}
		if done {
			rel.lines.end = pos
			break
		}
		key := canonicalKey(name)
		if key != "Connection" && isHopHeader(key) {
			other = true
		}
		switch key {
		case "Content-Length":
			if hasCL || !parseDecimal(value, &res.ContentLength) {
				return false, hopUnknown
			}
			hasCL = true
		case "Transfer-Encoding", "Pragma", "Trailer":
			return false, hopUnknown
		case "Connection":
			rel.lines.leaveOut(pos, next)
		case "Date":
			rel.hasDate = true
		case "Content-Type":
			rel.hasType = true
		case "X-Request-Id":
			rel.hasReqID = true
		}
		pos = next
		hb.add(key, value)
	}
	if !hasCL {
		return false, hopUnknown
	}
	conn := h["Connection"]
	hasClose := conn != nil && httpguts.HeaderValuesContainsToken(conn, "close")
	if res.ProtoMinor == 0 {
		res.Close = hasClose || conn == nil || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	} else {
		res.Close = hasClose
		if hasClose {
			// As net/http does for responses, but the fields it names go
			// first: without it, removeHopHeaders would not know them.
			if !namesNoFields(conn) {
				removeHopHeaders(h, "")
			}
			delete(h, "Connection")
		}
	}
	res.Header = h
	switch {
	case other:
		hop = hopOther
	case conn == nil:
		hop = hopNone
	case namesNoFields(conn):
		hop = hopConnectionOnly
	default:
		hop = hopOther // it names fields to remove too
	}
	// Other hop-by-hop fields, and those a Connection names, leave the
	// map (removeHopHeaders) but would stay in the lines.
	if ah != nil && hop != hopOther && !rel.lines.overflown {
		rel.keys, rel.clen, rel.relayable = len(h), res.ContentLength, true
		_, rel.hasConn = h["Connection"]
		*ah = rel
	}
	return true, hop
}

// namesNoFields is namesNoField for all of a Connection field's values.
func namesNoFields(vv []string) bool {
	for _, v := range vv {
		if !namesNoField(v) {
			return false
		}
	}
	return true
}

// namesNoField reports whether a Connection value has no token but
// keep-alive and close, which name no field for removeHopHeaders to
// remove.
func namesNoField(v string) bool {
	for range connectionNames(v) {
		return false
	}
	return true
}

// connectionNames yields the fields a Connection value names (RFC 9110
// section 7.6.1): its tokens but keep-alive and close, which name none.
func connectionNames(v string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for t := range strings.SplitSeq(v, ",") {
			if t = trimOWS(t); t != "" && !strings.EqualFold(t, "keep-alive") && !strings.EqualFold(t, "close") && !yield(t) {
				return
			}
		}
	}
}

// sizedBody is a response body of known length, read from the upstream
// connection's buffer; like net/http's, it reports io.EOF with the last
// bytes and io.ErrUnexpectedEOF when the upstream stops short.
type sizedBody struct {
	br     *bufio.Reader
	remain int64
}

func (b *sizedBody) Read(p []byte) (int, error) {
	if b.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *sizedBody) Close() error { return nil }

// nextField reads the header line at s[pos:] for both strict parsers:
// its name and value (OWS trimmed) and where the next line starts, or
// done at the blank line. ok is false for what they hand off: no colon, a
// name that is not a token, control bytes in the value. Lines end in
// CRLF (checked before).
func nextField(s string, pos int) (name, value string, next int, done, ok bool) {
	end := strings.IndexByte(s[pos:], '\n') - 1
	if end < 0 {
		return "", "", 0, false, false
	}
	end += pos
	if end == pos {
		return "", "", end + 2, true, true
	}
	line := s[pos:end]
	colon := strings.IndexByte(line, ':')
	if colon <= 0 {
		return "", "", 0, false, false
	}
	name, value = line[:colon], trimOWS(line[colon+1:])
	for i := 0; i < len(name); i++ {
		if !isTokenByte(name[i]) {
			return "", "", 0, false, false
		}
	}
	if !plainFieldValue(value) {
		return "", "", 0, false, false
	}
	return name, value, end + 2, false, true
}

// plainFieldValue reports whether v has only visible ASCII, spaces and
// tabs: no controls, and no obs-text (bytes from 0x80), which the fast
// loop leaves to net/http. Eight bytes at a time: a word with no byte
// below 0x20 or above 0x7e passes at once (the borrow and carry tricks
// flag every such byte, and at worst a byte next to one); a flagged
// word, with a tab say, is checked byte by byte.
func plainFieldValue(v string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(v); i += 8 {
		b := v[i : i+8]
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if ((w-0x20*ones)&^w|(w+ones)|w)&highs != 0 {
			break
		}
	}
	for ; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}
