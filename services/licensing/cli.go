package licensing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"
)

// The functions behind `vigil license keygen|sign|inspect`.

// Spec is what an issuer writes to describe a license (YAML or JSON), the input of Sign:
//
//	license_id: ACME-2027-001        # optional; a UUID when empty
//	licensee: ACME Corp              # required
//	issued: 2026-12-01T00:00:00Z     # optional; now when empty
//	expires: 2027-12-01T00:00:00Z    # optional; perpetual when empty
//	limits: {max_persons: 100000, max_agents: 10, max_cameras: 50}   # 0 = unlimited
//	image_api_units: ["*"]           # unit names of vigil.imageapi.v1, or "*" for all
//	features: [activity-search, ann-index]
type Spec struct {
	LicenseID     string     `yaml:"license_id"`
	Licensee      string     `yaml:"licensee"`
	Issued        *time.Time `yaml:"issued"`
	Expires       *time.Time `yaml:"expires"`
	Limits        Limits     `yaml:"limits"`
	ImageAPIUnits []string   `yaml:"image_api_units"`
	Features      []string   `yaml:"features"`
}

// Keygen creates an ed25519 key pair and writes the private key (PEM PKCS #8, mode 0600)
// and the public key (PEM PKIX, mode 0644). It refuses to overwrite an existing file, so a
// signing key is never lost by a repeated command. It returns the key's id.
func Keygen(privateKeyPath, publicKeyPath string) (keyID string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	privPEM, err := EncodePrivateKey(priv)
	if err != nil {
		return "", err
	}
	pubPEM, err := EncodePublicKey(pub)
	if err != nil {
		return "", err
	}
	if err := writeNew(privateKeyPath, privPEM, 0o600); err != nil {
		return "", err
	}
	if err := writeNew(publicKeyPath, pubPEM, 0o644); err != nil {
		_ = os.Remove(privateKeyPath)
		return "", err
	}
	return KeyID(pub), nil
}

// Sign reads the license spec at specPath (YAML or JSON), signs it with the private key at
// privateKeyPath and writes the license file to licensePath (refusing to overwrite).
func Sign(privateKeyPath, specPath, licensePath string) (*License, error) {
	priv, err := LoadPrivateKey(privateKeyPath)
	if err != nil {
		return nil, err
	}
	spec, err := os.ReadFile(specPath)
	if err != nil {
		return nil, fmt.Errorf("read license spec: %w", err)
	}
	file, l, err := SignBytes(priv, spec, time.Now())
	if err != nil {
		return nil, err
	}
	if err := writeNew(licensePath, file, 0o644); err != nil {
		return nil, err
	}
	return l, nil
}

// SignBytes turns a spec into a signed license file. now fills an empty issue date.
func SignBytes(priv ed25519.PrivateKey, spec []byte, now time.Time) ([]byte, *License, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(spec))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, nil, fmt.Errorf("%w: license spec: %w", ErrInvalidArgument, err)
	}
	l := &License{
		Format:        formatVersion,
		LicenseID:     s.LicenseID,
		Licensee:      strings.TrimSpace(s.Licensee),
		KeyID:         KeyID(priv.Public().(ed25519.PublicKey)),
		Issued:        now.UTC().Truncate(time.Second),
		Limits:        s.Limits,
		ImageAPIUnits: nonNil(s.ImageAPIUnits),
		Features:      nonNil(s.Features),
	}
	if l.LicenseID == "" {
		l.LicenseID = uuid.NewString()
	}
	if s.Issued != nil {
		l.Issued = s.Issued.UTC()
	}
	if s.Expires != nil {
		e := s.Expires.UTC()
		l.Expires = &e
	}
	if err := l.validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: license spec: %w", ErrInvalidArgument, err)
	}
	// Names this build does not know are refused when signing (a typo would silently
	// enable nothing) but accepted when verifying (a newer signer may know more).
	if err := knownNames("image_api_units", l.ImageAPIUnits, ImageAPIUnits); err != nil {
		return nil, nil, err
	}
	if err := knownNames("features", l.Features, Features); err != nil {
		return nil, nil, err
	}
	file, err := encodeFile(l, priv)
	if err != nil {
		return nil, nil, err
	}
	return file, l, nil
}

// Verify checks a license file with pub: signature, format and expiry at now. An expired
// license is returned together with an error wrapping ErrExpired.
func Verify(data []byte, pub ed25519.PublicKey, now time.Time) (*License, error) {
	l, err := decodeFile(data, pub)
	if err != nil {
		return nil, err
	}
	if l.ExpiredAt(now) {
		return l, fmt.Errorf("%w: license %s expired on %s", ErrExpired, l.LicenseID, l.Expires.Format(time.RFC3339))
	}
	return l, nil
}

// Inspect verifies the license file at licensePath with the public key at publicKeyPath
// (the embedded default when empty) and prints it to w. A license that verifies but has
// expired is printed, and the ErrExpired error returned too.
func Inspect(w io.Writer, licensePath, publicKeyPath string) (*License, error) {
	pub, err := LoadPublicKey(publicKeyPath)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(licensePath)
	if err != nil {
		return nil, fmt.Errorf("read license: %w", err)
	}
	now := time.Now()
	l, verr := Verify(data, pub, now)
	if l == nil {
		return nil, fmt.Errorf("%s: %w", licensePath, verr)
	}
	if err := Describe(w, l, now); err != nil {
		return nil, err
	}
	if verr != nil {
		return l, fmt.Errorf("%s: %w", licensePath, verr)
	}
	return l, nil
}

// Describe prints l for people.
func Describe(w io.Writer, l *License, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	expires := "never (perpetual)"
	if l.Expires != nil {
		expires = l.Expires.Format(time.RFC3339)
		if l.ExpiredAt(now) {
			expires += "  EXPIRED"
		} else {
			expires += fmt.Sprintf("  (in %d days)", int(l.Expires.Sub(now).Hours()/24))
		}
	}
	limit := func(v int64) string {
		if v == 0 {
			return "unlimited"
		}
		return fmt.Sprint(v)
	}
	list := func(v []string) string {
		if len(v) == 0 {
			return "none"
		}
		return strings.Join(v, ", ")
	}
	key := l.KeyID
	if key != "" {
		key += "  (signature valid)"
	}
	rows := [][2]string{
		{"License", l.LicenseID},
		{"Licensee", l.Licensee},
		{"Signing key", key},
		{"Issued", l.Issued.Format(time.RFC3339)},
		{"Expires", expires},
		{"Max persons", limit(l.Limits.MaxPersons)},
		{"Max agents", limit(l.Limits.MaxAgents)},
		{"Max cameras", limit(l.Limits.MaxCameras)},
		{"Image API units", list(l.ImageAPIUnits)},
		{"Features", list(l.Features)},
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1]); err != nil {
			return err
		}
	}
	return tw.Flush()
}

func knownNames(field string, names, known []string) error {
	for _, n := range names {
		if n != All && !slices.Contains(known, n) {
			return fmt.Errorf("%w: license spec: %s: %q is unknown (known: %s, or \"*\")",
				ErrInvalidArgument, field, n, strings.Join(known, ", "))
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; not overwriting it", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
