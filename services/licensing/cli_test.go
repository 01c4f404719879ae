package licensing_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/services/licensing"
)

// keys creates a key pair with Keygen in a temporary folder.
func keys(t *testing.T) (privPath, pubPath string) {
	t.Helper()
	dir := t.TempDir()
	privPath, pubPath = filepath.Join(dir, "license.key"), filepath.Join(dir, "license.pub")
	id, err := licensing.Keygen(privPath, pubPath)
	require.NoError(t, err)
	require.Len(t, id, 16)
	return privPath, pubPath
}

// sign writes spec to a file, signs it with Sign and returns the license file's path.
func sign(t *testing.T, privPath, spec string) string {
	t.Helper()
	dir := t.TempDir()
	specPath := filepath.Join(dir, "spec.yaml")
	require.NoError(t, os.WriteFile(specPath, []byte(spec), 0o600))
	out := filepath.Join(dir, "vigil.license")
	_, err := licensing.Sign(privPath, specPath, out)
	require.NoError(t, err)
	return out
}

const fullSpec = `
license_id: ACME-2027-001
licensee: ACME Corp
issued: 2026-12-01T00:00:00Z
expires: 2099-12-01T00:00:00Z
limits:
  max_persons: 100000
  max_agents: 10
  max_cameras: 0
image_api_units: [face-fitter, template-extractor]
features: [activity-search, ann-index]
`

func TestKeygenSignInspectRoundTrip(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, fullSpec)

	var out bytes.Buffer
	l, err := licensing.Inspect(&out, licPath, pubPath)
	require.NoError(t, err)
	require.Equal(t, "ACME-2027-001", l.LicenseID)
	require.Equal(t, "ACME Corp", l.Licensee)
	require.Equal(t, licensing.Limits{MaxPersons: 100000, MaxAgents: 10}, l.Limits)
	require.Equal(t, time.Date(2099, 12, 1, 0, 0, 0, 0, time.UTC), *l.Expires)
	require.Equal(t, []string{"face-fitter", "template-extractor"}, l.ImageAPIUnits)
	require.True(t, l.FeatureEnabled(licensing.FeatureANNIndex))
	require.False(t, l.UnitEnabled("age-estimator"))

	pubPEM, err := os.ReadFile(pubPath)
	require.NoError(t, err)
	pub, err := licensing.ParsePublicKey(pubPEM)
	require.NoError(t, err)
	require.Equal(t, licensing.KeyID(pub), l.KeyID)

	text := out.String()
	for _, want := range []string{"ACME-2027-001", "ACME Corp", "signature valid", "100000", "unlimited", "ann-index"} {
		require.Contains(t, text, want)
	}

	// The file is readable JSON followed by the signature block.
	data, err := os.ReadFile(licPath)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(data, []byte("{\n")))
	require.Contains(t, string(data), "-----BEGIN VIGIL LICENSE SIGNATURE-----\n")
}

func TestSignAcceptsJSONSpecAndDefaults(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, `{"licensee": "Json Inc", "limits": {"max_persons": 5}, "image_api_units": ["*"]}`)
	var out bytes.Buffer
	l, err := licensing.Inspect(&out, licPath, pubPath)
	require.NoError(t, err)
	require.NotEmpty(t, l.LicenseID, "a license id is generated")
	require.Nil(t, l.Expires, "perpetual")
	require.WithinDuration(t, time.Now(), l.Issued, time.Minute)
	require.True(t, l.UnitEnabled("anything"))
	require.Empty(t, l.Features)
	require.Contains(t, out.String(), "never (perpetual)")
}

func TestSignRefusesBadSpecs(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	for name, spec := range map[string]string{
		"missing licensee":   `limits: {max_persons: 1}`,
		"unknown field":      "licensee: A\nmax_person: 3\n",
		"negative limit":     "licensee: A\nlimits: {max_agents: -1}\n",
		"expires <= issued":  "licensee: A\nissued: 2027-01-01T00:00:00Z\nexpires: 2026-01-01T00:00:00Z\n",
		"bad unit name":      "licensee: A\nimage_api_units: [\"Age Estimator\"]\n",
		"bad feature name":   "licensee: A\nfeatures: [\"ANN\"]\n",
		"not yaml nor json":  "licensee: [\n",
		"limits of the type": "licensee: A\nlimits: {max_persons: lots}\n",
		"unknown unit":       "licensee: A\nimage_api_units: [age-estimater]\n",
		"unknown feature":    "licensee: A\nfeatures: [time-travel]\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := licensing.SignBytes(priv, []byte(spec), time.Now())
			require.ErrorIs(t, err, licensing.ErrInvalidArgument)
		})
	}
}

func TestKeygenAndSignNeverOverwrite(t *testing.T) {
	privPath, pubPath := keys(t)
	_, err := licensing.Keygen(privPath, filepath.Join(t.TempDir(), "other.pub"))
	require.ErrorContains(t, err, "already exists")
	_, err = licensing.Keygen(filepath.Join(t.TempDir(), "other.key"), pubPath)
	require.ErrorContains(t, err, "already exists")

	licPath := sign(t, privPath, fullSpec)
	specPath := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(specPath, []byte(fullSpec), 0o600))
	_, err = licensing.Sign(privPath, specPath, licPath)
	require.ErrorContains(t, err, "already exists")
}

// Changing any single byte of a license file, anywhere, makes it invalid.
func TestEveryChangedByteIsRefused(t *testing.T) {
	privPath, pubPath := keys(t)
	data, err := os.ReadFile(sign(t, privPath, fullSpec))
	require.NoError(t, err)
	pub, err := licensing.LoadPublicKey(pubPath)
	require.NoError(t, err)
	_, err = licensing.Verify(data, pub, time.Now())
	require.NoError(t, err)

	for i := range data {
		for _, flip := range []byte{0x01, 0x20} {
			tampered := bytes.Clone(data)
			tampered[i] ^= flip
			l, err := licensing.Verify(tampered, pub, time.Now())
			require.Error(t, err, "byte %d ^ %#x accepted", i, flip)
			require.Nil(t, l)
		}
	}
	// Cut or extended files too.
	for _, bad := range [][]byte{data[:len(data)-1], append(bytes.Clone(data), '\n'), append([]byte(" "), data...)} {
		_, err := licensing.Verify(bad, pub, time.Now())
		require.Error(t, err)
	}
}

func TestTamperedContentNamesTheProblem(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, fullSpec)
	data, err := os.ReadFile(licPath)
	require.NoError(t, err)
	tampered := bytes.Replace(data, []byte(`"max_persons": 100000`), []byte(`"max_persons": 900000`), 1)
	require.NotEqual(t, data, tampered)
	require.NoError(t, os.WriteFile(licPath, tampered, 0o644))

	_, err = licensing.Inspect(&bytes.Buffer{}, licPath, pubPath)
	require.ErrorIs(t, err, licensing.ErrBadSignature)
	require.ErrorContains(t, err, "changed after it was signed")
}

func TestOtherKeyIsRefused(t *testing.T) {
	privPath, _ := keys(t)
	_, otherPub := keys(t)
	licPath := sign(t, privPath, fullSpec)
	_, err := licensing.Inspect(&bytes.Buffer{}, licPath, otherPub)
	require.ErrorIs(t, err, licensing.ErrBadSignature)
	require.ErrorContains(t, err, "trusts key")

	// Nor does the embedded default key (whose private key nobody here has) accept it.
	_, err = licensing.Inspect(&bytes.Buffer{}, licPath, "")
	require.ErrorIs(t, err, licensing.ErrBadSignature)
}

func TestExpiredIsRefusedButShown(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, "licensee: Old Co\nissued: 2020-01-01T00:00:00Z\nexpires: 2021-01-01T00:00:00Z\n")
	var out bytes.Buffer
	l, err := licensing.Inspect(&out, licPath, pubPath)
	require.ErrorIs(t, err, licensing.ErrExpired)
	require.NotNil(t, l, "an expired license is still shown")
	require.Contains(t, out.String(), "EXPIRED")
}

func TestEmbeddedPublicKey(t *testing.T) {
	pub := licensing.DefaultPublicKey()
	require.Len(t, pub, ed25519.PublicKeySize)
	def, err := licensing.LoadPublicKey("")
	require.NoError(t, err)
	require.Equal(t, pub, def)
}

func TestFreeTier(t *testing.T) {
	f := licensing.FreeTier()
	require.Equal(t, licensing.Limits{MaxPersons: 1000, MaxAgents: 2, MaxCameras: 4}, f.Limits)
	require.True(t, f.UnitEnabled("face-fitter"))
	require.True(t, f.FeatureEnabled(licensing.FeatureActivitySearch))
	require.False(t, f.FeatureEnabled(licensing.FeatureANNIndex))
	require.False(t, strings.Contains(strings.Join(f.Features, ","), "*"))
}
