package backend

import (
	"context"
	"fmt"

	"google.golang.org/grpc/metadata"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// ImageAPIFaces is the FaceExtractor over the Image API's ExtractTemplates (which
// detects the faces first).
type ImageAPIFaces struct {
	peers rpc.Peers
}

// NewImageAPIFaces returns the FaceExtractor that calls the "imageapi" peer.
func NewImageAPIFaces(peers rpc.Peers) *ImageAPIFaces { return &ImageAPIFaces{peers: peers} }

// Faces implements FaceExtractor. The workspace of ctx's principal travels as
// x-vigil-workspace-id, since the Image API is a workspace method and the backend calls
// it with the internal token.
func (f *ImageAPIFaces) Faces(ctx context.Context, image []byte) ([]Face, error) {
	conn, err := f.peers.Conn("imageapi")
	if err != nil {
		return nil, fmt.Errorf("imageapi: %v: %w", err, ErrUnavailable)
	}
	if p := rpc.PrincipalFrom(ctx); p != nil && p.WorkspaceID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, rpc.MetadataWorkspace, p.WorkspaceID)
	}
	resp, err := imageapiv1.NewImageApiServiceClient(conn).ExtractTemplates(ctx, &imageapiv1.ExtractTemplatesRequest{Image: image})
	if err != nil {
		return nil, err
	}
	var out []Face
	for _, o := range resp.GetSample().GetObjects() {
		if o.GetObjectClass() != imageapiv1.ObjectClass_OBJECT_CLASS_FACE {
			continue
		}
		out = append(out, Face{Box: o.GetBox(), Confidence: o.GetConfidence(), Template: o.GetTemplate()})
	}
	return out, nil
}
