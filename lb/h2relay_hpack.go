package lb

import (
	"errors"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2hdrs is a decoded header block. The relay decodes header blocks
// itself instead of with the Framer's ReadMetaHeaders, which for every
// block allocates a MetaHeadersFrame, an emit closure with its captured
// variables and a field slice grown from nothing (a third of the relay's
// allocations per call). Here the decoder, its emit function and the
// field slice belong to the connection's reader and are reused: Fields
// is valid only until the reader reads the next block, so whoever keeps
// it copies it (the strings in it stay valid).
type h2hdrs struct {
	StreamID  uint32
	end       bool
	Fields    []hpack.HeaderField
	Truncated bool // past MaxHeaderListSize: the fields after it were dropped
}

func (h *h2hdrs) StreamEnded() bool { return h.end }

// PseudoValue is the value of pseudo-header ":"+name.
func (h *h2hdrs) PseudoValue(name string) string {
	for _, hf := range h.Fields {
		if !hf.IsPseudo() {
			break
		}
		if hf.Name[1:] == name {
			return hf.Value
		}
	}
	return ""
}

// h2hdrReader is a connection's header-block decoding state, used by its
// reader goroutine only.
type h2hdrReader struct {
	dec     *hpack.Decoder
	hdr     h2hdrs
	max     uint32 // SETTINGS_MAX_HEADER_LIST_SIZE we announced
	remain  uint32
	invalid error
	regular bool // a regular field was seen: no pseudo-header may follow
}

var (
	errPseudoAfterRegular = errors.New("pseudo-header after a regular header")
	errHeaderName         = errors.New("invalid header field name")
	errHeaderValue        = errors.New("invalid header field value")
	errPseudoHeader       = errors.New("invalid or duplicate pseudo-header")
)

func (h *h2hdrReader) init(maxList uint32) {
	if maxList == 0 {
		maxList = 16 << 20 // the Framer's default
	}
	h.max = maxList
	h.dec = hpack.NewDecoder(4096, h.emit)
	h.dec.SetMaxStringLength(int(min(maxList, 1<<30)))
}

// emit checks and collects one field as the Framer's readMetaFrame does.
func (h *h2hdrReader) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		h.invalid = errHeaderValue
	} else if hf.IsPseudo() {
		if h.regular {
			h.invalid = errPseudoAfterRegular
		}
	} else {
		h.regular = true
		if !validWireHeaderName(hf.Name) {
			h.invalid = errHeaderName
		}
	}
	if h.invalid != nil {
		h.dec.SetEmitEnabled(false)
		return
	}
	if size := hf.Size(); size <= h.remain {
		h.remain -= size
		h.hdr.Fields = append(h.hdr.Fields, hf)
		return
	}
	h.dec.SetEmitEnabled(false)
	h.hdr.Truncated = true
	h.remain = 0
}

// validWireHeaderName: a token in lower case (RFC 9113 section 8.2.1).
func validWireHeaderName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// read decodes the block that hf starts, reading its CONTINUATION frames
// (the Framer checks that nothing else comes between). Malformed fields
// are a stream error, a broken block a connection error, as with
// ReadMetaHeaders.
func (h *h2hdrReader) read(fr *http2.Framer, hf *http2.HeadersFrame) (*h2hdrs, error) {
	clear(h.hdr.Fields) // the previous block's strings
	h.hdr = h2hdrs{StreamID: hf.StreamID, end: hf.StreamEnded(), Fields: h.hdr.Fields[:0]}
	h.remain, h.invalid, h.regular = h.max, nil, false
	h.dec.SetEmitEnabled(true)
	frag, ended := hf.HeaderBlockFragment(), hf.HeadersEnded()
	for {
		// Past the size limit (or twice what could still fit), the rest
		// of the block is not worth decoding.
		if h.hdr.Truncated && len(frag) > 0 || int64(len(frag)) > 2*(int64(h.remain)+int64(h.max)) || h.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := h.dec.Write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf := f.(*http2.ContinuationFrame) // guaranteed by the Framer
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := h.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if h.invalid == nil && !checkPseudos(h.hdr.Fields) {
		h.invalid = errPseudoHeader
	}
	if h.invalid != nil {
		return nil, http2.StreamError{StreamID: h.hdr.StreamID, Code: http2.ErrCodeProtocol, Cause: h.invalid}
	}
	return &h.hdr, nil
}

// checkPseudos: only known pseudo-headers, none twice, not request and
// response ones together.
func checkPseudos(fields []hpack.HeaderField) bool {
	var req, resp bool
	for i, hf := range fields {
		if !hf.IsPseudo() {
			break
		}
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			req = true
		case ":status":
			resp = true
		default:
			return false
		}
		for _, prev := range fields[:i] {
			if prev.Name == hf.Name {
				return false
			}
		}
	}
	return !(req && resp)
}

// fieldsCopy is fields in dst's storage when it fits there.
func fieldsCopy(dst []hpack.HeaderField, fields []hpack.HeaderField) []hpack.HeaderField {
	if len(fields) > cap(dst) {
		dst = make([]hpack.HeaderField, 0, len(fields))
	}
	return append(dst[:0], fields...)
}

// writeFieldLocked encodes hf into encBuf. Whole entries of HPACK's
// static table are written as their index and sensitive fields as
// never-indexed literals, both without the encoder's table search (two
// to four map lookups with string hashing per field). Neither touches
// the dynamic table, so the encoder stays in step with the peer's
// decoder; only the first field after the peer changed its table size
// goes through the encoder, which then starts the block with the size
// update (RFC 7541 section 4.2).
func (c *h2conn) writeFieldLocked(hf hpack.HeaderField) {
	if !c.encResized {
		if hf.Sensitive {
			b := append(c.encBuf.AvailableBuffer(), 0x10) // literal never indexed, new name
			if hf.Name == "x-request-id" {
				b = append(b, hpackXRequestID...)
			} else {
				b = appendHpackString(b, hf.Name)
			}
			// The value raw: Huffman-coding a request id costs more CPU
			// (bit by bit, twice per call) than its ten bytes are worth.
			b = appendHpackInt(b, 0, 7, uint64(len(hf.Value)))
			b = append(b, hf.Value...)
			c.encBuf.Write(b)
			return
		}
		if i := hpackStaticIndex(hf); i != 0 {
			c.encBuf.WriteByte(0x80 | i)
			return
		}
	}
	c.encResized = false
	_ = c.enc.WriteField(hf)
}

// hpackXRequestID is the name the relay writes on every call, encoded
// once.
var hpackXRequestID = appendHpackString(nil, "x-request-id")

// hpackStaticIndex is hf's index in HPACK's static table (RFC 7541
// appendix A) when both name and value match, for the fields the relay
// writes often; 0 otherwise.
func hpackStaticIndex(hf hpack.HeaderField) byte {
	switch hf.Name {
	case ":method":
		switch hf.Value {
		case "GET":
			return 2
		case "POST":
			return 3
		}
	case ":path":
		if hf.Value == "/" {
			return 4
		}
	case ":scheme":
		switch hf.Value {
		case "http":
			return 6
		case "https":
			return 7
		}
	case ":status":
		switch hf.Value {
		case "200":
			return 8
		case "204":
			return 9
		case "206":
			return 10
		case "304":
			return 11
		case "400":
			return 12
		case "404":
			return 13
		case "500":
			return 14
		}
	}
	return 0
}

// appendHpackString appends s as an HPACK string literal, Huffman-coded
// when that is shorter, as the encoder does.
func appendHpackString(b []byte, s string) []byte {
	if n := hpack.HuffmanEncodeLength(s); n < uint64(len(s)) {
		b = appendHpackInt(b, 0x80, 7, n)
		return hpack.AppendHuffmanString(b, s)
	}
	b = appendHpackInt(b, 0, 7, uint64(len(s)))
	return append(b, s...)
}

// appendHpackInt appends i with an n-bit prefix after flags (RFC 7541
// section 5.1).
func appendHpackInt(b []byte, flags byte, n uint, i uint64) []byte {
	k := uint64(1)<<n - 1
	if i < k {
		return append(b, flags|byte(i))
	}
	b = append(b, flags|byte(k))
	for i -= k; i >= 128; i >>= 7 {
		b = append(b, byte(0x80|i&0x7f))
	}
	return append(b, byte(i))
}
