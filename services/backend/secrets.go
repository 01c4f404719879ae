package backend

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Credential prefixes: a leaked secret is recognisable (and greppable by secret
// scanners), and the prefix tells Authenticate which table to look in.
const (
	prefixSession = "vgs_"
	prefixAPIKey  = "vgk_"
	prefixAgent   = "vga_"
)

// newSecret returns prefix + 256 random bits, base64url.
func newSecret(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret is the stored form of a generated secret. SHA-256 suffices (and is what makes
// per-request lookups cheap): the secret has 256 bits of entropy, so there is nothing for
// a slow hash to protect against; passwords, chosen by people, get argon2id instead.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// secretPrefix is the shown part of a secret ("vgk_AbCd1234").
func secretPrefix(secret string) string {
	if len(secret) < 12 {
		return secret
	}
	return secret[:12]
}

// argon2id parameters: the RFC 9106 second recommendation (64 MiB, 3 passes) scaled to
// 19 MiB/2 passes as OWASP suggests for login endpoints on shared machines.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
)

// hashPassword returns the PHC string of an argon2id hash of password.
func hashPassword(password string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime,
		argonThreads, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

var errBadHash = errors.New("malformed password hash")

// checkPassword reports whether password matches the PHC string, in constant time.
func checkPassword(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var mem, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, mem, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// newPassword returns a generated password for bootstrap admins: 18 random bytes.
func newPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
