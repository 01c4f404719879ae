package imageapi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/platform/platformtest"
	"github.com/vigilhq/vigil/platform/rpc"
	"github.com/vigilhq/vigil/services/imageapi"
	"github.com/vigilhq/vigil/services/licensing"
)

// A unit the license does not enable is refused with PERMISSION_DENIED by the Image API
// as the process runs it: the real licensing component, asked over gRPC.
func TestUnitsOutsideTheLicenseAreRefused(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "license.key"), filepath.Join(dir, "license.pub")
	_, err := licensing.Keygen(priv, pub)
	require.NoError(t, err)
	spec := filepath.Join(dir, "spec.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(`
license_id: DETECT-ONLY
licensee: Detection Only Ltd
expires: 2099-01-01T00:00:00Z
limits: {max_persons: 10, max_agents: 1, max_cameras: 1}
image_api_units: [face-detector]
`), 0o600))
	lic := filepath.Join(dir, "vigil.license")
	_, err = licensing.Sign(priv, spec, lic)
	require.NoError(t, err)

	app := platformtest.StartWithConfig(t,
		fmt.Sprintf("licensing:\n  license_file: %q\n  public_key_file: %q\n  watch_interval: 0s\n", lic, pub),
		licensing.Module, imageapi.Module)
	client := imageapiv1.NewImageApiServiceClient(app.GRPC)
	ctx := metadata.AppendToOutgoingContext(t.Context(),
		rpc.MetadataAuthorization, "Bearer "+platformtest.InternalToken,
		rpc.MetadataWorkspace, "00000000-0000-0000-0000-000000000001")
	photo, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faces", "obama_1.jpg"))
	require.NoError(t, err)

	faces, err := client.DetectFaces(ctx, &imageapiv1.DetectFacesRequest{Image: photo})
	require.NoError(t, err, "the licensed unit runs")
	require.Len(t, faces.GetSample().GetObjects(), 1)

	_, err = client.EstimateAge(ctx, &imageapiv1.EstimateAgeRequest{Image: photo})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "age is not in the license: %v", err)
	require.Contains(t, status.Convert(err).Message(), "age-estimator")
}
