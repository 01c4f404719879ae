package verifymatcher

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// MaxImageBytes bounds each image of VerifyImages.
const MaxImageBytes = 10 << 20

// Extractor turns an image into the template of its largest face through the
// Image API's gRPC client.
type Extractor struct {
	client imageapiv1.ImageApiServiceClient
}

// NewExtractor returns an Extractor on the Image API client.
func NewExtractor(c imageapiv1.ImageApiServiceClient) *Extractor { return &Extractor{client: c} }

// largestFace extracts templates from an image and returns the largest face's.
func (e *Extractor) largestFace(ctx context.Context, workspace, field string, image []byte) (Template, error) {
	if len(image) == 0 {
		return Template{}, fmt.Errorf("%w: %s is empty", ErrInvalidArgument, field)
	}
	if len(image) > MaxImageBytes {
		return Template{}, fmt.Errorf("%w: %s is %d bytes, above the limit of %d", ErrInvalidArgument, field, len(image), MaxImageBytes)
	}
	// The Image API's methods are workspace methods; the internal caller names the
	// workspace it acts for.
	ctx = metadata.AppendToOutgoingContext(ctx, rpc.MetadataWorkspace, workspace)
	resp, err := e.client.ExtractTemplates(ctx, &imageapiv1.ExtractTemplatesRequest{Image: image})
	if err != nil {
		switch status.Code(err) {
		case codes.InvalidArgument:
			return Template{}, fmt.Errorf("%w: %s: %s", ErrInvalidArgument, field, status.Convert(err).Message())
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
			return Template{}, fmt.Errorf("%w: %v", ErrImageAPI, err)
		}
		return Template{}, err
	}
	var best *imageapiv1.ImageObject
	var bestArea float32
	for _, o := range resp.GetSample().GetObjects() {
		if o.GetObjectClass() != imageapiv1.ObjectClass_OBJECT_CLASS_FACE || len(o.GetTemplate().GetVector()) == 0 {
			continue
		}
		b := o.GetBox()
		if a := (b.GetX2() - b.GetX1()) * (b.GetY2() - b.GetY1()); best == nil || a > bestArea {
			best, bestArea = o, a
		}
	}
	if best == nil {
		return Template{}, fmt.Errorf("%w on %s", ErrNoFace, field)
	}
	return Template{ModelID: best.GetTemplate().GetModel(), Vector: best.GetTemplate().GetVector()}, nil
}

// VerifyImages extracts both images' templates (concurrently) and compares them.
func (v *Verifier) VerifyImages(ctx context.Context, e *Extractor, workspace string, probe, candidate []byte, r Rule) (Verification, Threshold, Template, Template, error) {
	var pt, ct Template
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { pt, err = e.largestFace(gctx, workspace, "probe_image", probe); return err })
	g.Go(func() (err error) { ct, err = e.largestFace(gctx, workspace, "candidate_image", candidate); return err })
	if err := g.Wait(); err != nil {
		return Verification{}, Threshold{}, Template{}, Template{}, err
	}
	res, th, err := v.Verify(pt, ct, r)
	return res, th, pt, ct, err
}
