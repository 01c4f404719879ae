package objstore

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// emptySHA256 is the hex SHA-256 of no bytes.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// maxChunkSize bounds one signed chunk (clients send 64 KiB to a few MiB).
const maxChunkSize = 16 << 20

// decodeSignedChunks copies the payload of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body
// to w, checking that every chunk's signature chains from the seed signature
// (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html). It returns
// the payload length.
func decodeSignedChunks(body io.Reader, w io.Writer, v *verified) (int64, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	prev := v.seedSignature
	var total int64
	buf := make([]byte, 0, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return total, denied("IncompleteBody", "truncated chunk header")
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		sizeHex, ext, ok := strings.Cut(line, ";")
		sig, found := strings.CutPrefix(ext, "chunk-signature=")
		if !ok || !found {
			return total, denied("InvalidRequest", "malformed chunk header")
		}
		size, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || size < 0 || size > maxChunkSize {
			return total, denied("InvalidRequest", "bad chunk size %q", sizeHex)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		data := buf[:size]
		if _, err := io.ReadFull(br, data); err != nil {
			return total, denied("IncompleteBody", "truncated chunk")
		}
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:]); err != nil || crlf != [2]byte{'\r', '\n'} {
			return total, denied("IncompleteBody", "chunk not terminated")
		}
		h := sha256.Sum256(data)
		sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + v.amzDate + "\n" + v.scope + "\n" + prev + "\n" + emptySHA256 + "\n" + hex.EncodeToString(h[:])
		if subtle(hmacHex(v.signingKey, sts), sig) {
			return total, denied("SignatureDoesNotMatch", "chunk %d signature does not match", total)
		}
		prev = sig
		if size == 0 {
			return total, nil
		}
		if _, err := w.Write(data); err != nil {
			return total, fmt.Errorf("spool upload: %w", err)
		}
		total += size
	}
}
