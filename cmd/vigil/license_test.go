package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	cmd := newRootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

func TestLicenseCommands(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
	spec, lic := filepath.Join(dir, "spec.yaml"), filepath.Join(dir, "vigil.license")

	out, err := runCmd(t, "license", "keygen", priv, pub)
	require.NoError(t, err)
	require.Contains(t, out, "key ")
	_, err = runCmd(t, "license", "keygen", priv, pub)
	require.Error(t, err, "an existing key is never overwritten")

	require.NoError(t, os.WriteFile(spec, []byte("license_id: TEST-1\nlicensee: Test Corp\nlimits: {max_persons: 10}\n"), 0o600))
	out, err = runCmd(t, "license", "sign", priv, spec, lic)
	require.NoError(t, err)
	require.Contains(t, out, "TEST-1")

	out, err = runCmd(t, "license", "inspect", lic, pub)
	require.NoError(t, err)
	require.Contains(t, out, "Test Corp")

	// Another key does not verify it.
	priv2, pub2 := filepath.Join(dir, "key2.pem"), filepath.Join(dir, "pub2.pem")
	_, err = runCmd(t, "license", "keygen", priv2, pub2)
	require.NoError(t, err)
	_, err = runCmd(t, "license", "inspect", lic, pub2)
	require.Error(t, err)

	_, err = runCmd(t, "license", "sign", priv)
	require.Error(t, err)
}
