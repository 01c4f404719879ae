package backend

import (
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// photoUploadRoutes lets browsers upload a photo as multipart/form-data (field "image",
// optional field "set_main" = "true", optional "request_id") to the same path as the JSON
// binding of AddPhoto.
func photoUploadRoutes(conn *grpc.ClientConn) []rpc.HTTPRoute {
	client := backendv1.NewPersonServiceClient(conn)
	return []rpc.HTTPRoute{{
		Pattern:     "POST /v1/persons/{person_id}/photos",
		ContentType: "multipart/form-data",
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { uploadPhoto(client, w, r) }),
	}}
}

func uploadPhoto(client backendv1.PersonServiceClient, w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxImageBytes+1<<20)
	file, _, err := r.FormFile("image")
	if err != nil {
		writeHTTPError(w, r, status.Error(3 /* InvalidArgument */, "image: a multipart file field \"image\" is required: "+err.Error()))
		return
	}
	defer file.Close()
	img, err := io.ReadAll(io.LimitReader(file, maxImageBytes+1))
	if err != nil {
		writeHTTPError(w, r, status.Error(3, "image: "+err.Error()))
		return
	}
	req := &backendv1.AddPhotoRequest{
		PersonId: r.PathValue("person_id"), Image: img,
		SetMain: r.FormValue("set_main") == "true", RequestId: r.FormValue("request_id"),
	}
	// Forward the caller's credentials and request id; the gRPC server authorizes.
	md := metadata.MD{}
	for _, h := range []string{"Authorization", "X-Api-Key", "X-Request-Id"} {
		if v := r.Header.Get(h); v != "" {
			md.Set(strings.ToLower(h), v)
		}
	}
	resp, err := client.AddPhoto(metadata.NewOutgoingContext(r.Context(), md), req)
	if err != nil {
		writeHTTPError(w, r, err)
		return
	}
	b, err := protojson.Marshal(resp)
	if err != nil {
		writeHTTPError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// writeHTTPError answers as the gateway does: the status as JSON with the mapped HTTP code.
func writeHTTPError(w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	b, _ := protojson.Marshal(st.Proto())
	_, _ = w.Write(b)
}
