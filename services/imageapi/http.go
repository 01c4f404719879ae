package imageapi

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/ml/vision"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// maxUploadBytes bounds one multipart request (all its images). The server
// applies its own per-image limit on top.
const maxUploadBytes = 64 << 20

// multipartMemory is how much of an upload is held in memory before the rest
// spills to temporary files.
const multipartMemory = 32 << 20

// HTTPRoutes are the hand-written routes the gateway mounts for this service.
func HTTPRoutes(conn *grpc.ClientConn) []rpc.HTTPRoute {
	return []rpc.HTTPRoute{{
		Pattern:     "POST /v1/image:process",
		ContentType: "multipart/form-data",
		Handler:     MultipartHandler(imageapiv1.NewImageApiServiceClient(conn)),
	}}
}

// MultipartHandler serves POST /v1/image:process with multipart/form-data:
//
//   - "image": one or more files, each one sample, in order;
//   - "units": comma-separated unit names ("face_detector,age"; the enum names
//     such as UNIT_AGE are accepted too); required;
//   - "score_threshold", "min_face_size": optional face detector options.
//
// It calls Process through client (so authentication, license checks and
// errors are exactly those of the gRPC and JSON routes, the Authorization
// header being forwarded) and answers with the same JSON as the JSON route.
func MultipartHandler(client imageapiv1.ImageApiServiceClient) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := parseMultipart(w, r)
		if err != nil {
			writeError(w, toStatus(err))
			return
		}
		ctx := r.Context()
		var md []string
		if v := r.Header.Get("Authorization"); v != "" {
			md = append(md, rpc.MetadataAuthorization, v)
		}
		if v := r.Header.Get(log.RequestIDHeader); v != "" {
			md = append(md, log.RequestIDHeader, v)
		}
		if len(md) > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, md...)
		}
		resp, err := client.Process(ctx, req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func parseMultipart(w http.ResponseWriter, r *http.Request) (*imageapiv1.ProcessRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes)
	if err := r.ParseMultipartForm(multipartMemory); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalid("image", "upload larger than %d bytes", maxUploadBytes)
		}
		return nil, invalid("body", "not a multipart/form-data body: %v", err)
	}
	defer r.MultipartForm.RemoveAll()
	req := &imageapiv1.ProcessRequest{}
	files := r.MultipartForm.File["image"]
	if len(files) == 0 {
		return nil, invalid("image", "a file field named image is required")
	}
	for i, fh := range files {
		b, err := readPart(fh)
		if err != nil {
			return nil, invalid(fmt.Sprintf("image[%d]", i), "%v", err)
		}
		req.Samples = append(req.Samples, &imageapiv1.SampleInput{Image: b})
	}
	units, err := parseUnitList(r.FormValue("units"))
	if err != nil {
		return nil, err
	}
	req.Units = units
	opts := &imageapiv1.FaceDetectorOptions{}
	for _, f := range []struct {
		name string
		dst  *float32
	}{{"score_threshold", &opts.ScoreThreshold}, {"min_face_size", &opts.MinFaceSize}} {
		if v := r.FormValue(f.name); v != "" {
			x, err := strconv.ParseFloat(v, 32)
			if err != nil {
				return nil, invalid(f.name, "not a number: %q", v)
			}
			*f.dst = float32(x)
		}
	}
	req.FaceDetector = opts
	return req, nil
}

func readPart(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// parseUnitList reads "face_detector, age" or "UNIT_FACE_DETECTOR,UNIT_AGE".
func parseUnitList(list string) ([]imageapiv1.Unit, error) {
	if strings.TrimSpace(list) == "" {
		return nil, invalid("units", "required, e.g. face_detector,age")
	}
	byName := map[vision.Unit]imageapiv1.Unit{}
	for p, v := range unitFromProto {
		byName[v] = p
	}
	var out []imageapiv1.Unit
	for _, name := range strings.Split(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		name = strings.TrimPrefix(name, "unit_")
		u, ok := byName[vision.Unit(name)]
		if !ok {
			return nil, invalid("units", "unknown unit %q", name)
		}
		out = append(out, u)
	}
	return out, nil
}

var jsonOut = protojson.MarshalOptions{EmitUnpopulated: true}

func writeJSON(w http.ResponseWriter, code int, m proto.Message) {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// writeError answers like grpc-gateway's default error handler: the HTTP
// code mapped from the gRPC code, and the status as JSON.
func writeError(w http.ResponseWriter, err error) {
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.Internal, "internal error")
	}
	writeJSON(w, runtime.HTTPStatusFromCode(st.Code()), st.Proto())
}
