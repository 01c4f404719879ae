package tasks

import (
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// importRoutes lets browsers and scripts POST the zip or CSV itself to /v1/jobs:import
// (Content-Type application/zip or text/csv; ?file_name=&group_ids=a&group_ids=b)
// instead of base64 inside JSON. The route calls CreateImportJob with the caller's
// credentials; the gRPC server authorizes as for any call.
func importRoutes(conn *grpc.ClientConn) []rpc.HTTPRoute {
	client := tasksv1.NewTaskServiceClient(conn)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { uploadImport(client, w, r) })
	return []rpc.HTTPRoute{
		{Pattern: "POST /v1/jobs:import", ContentType: "application/zip", Handler: h},
		{Pattern: "POST /v1/jobs:import", ContentType: "text/csv", Handler: h},
	}
}

func uploadImport(client tasksv1.TaskServiceClient, w http.ResponseWriter, r *http.Request) {
	req := &tasksv1.CreateImportJobRequest{
		FileName: r.URL.Query().Get("file_name"),
		GroupIds: r.URL.Query()["group_ids"],
		Format:   tasksv1.ImportFormat_IMPORT_FORMAT_CSV,
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/zip") {
		req.Format = tasksv1.ImportFormat_IMPORT_FORMAT_ZIP
	}
	// The gateway bounds the body (max_body_bytes); the gRPC message bound applies after.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeHTTPError(w, status.Error(codes.InvalidArgument, "content: "+err.Error()))
		return
	}
	req.Source = &tasksv1.CreateImportJobRequest_Content{Content: body}
	md := metadata.MD{}
	for _, h := range []string{"Authorization", "X-Api-Key", "X-Request-Id"} {
		if v := r.Header.Get(h); v != "" {
			md.Set(strings.ToLower(h), v)
		}
	}
	resp, err := client.CreateImportJob(metadata.NewOutgoingContext(r.Context(), md), req)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	b, err := protojson.Marshal(resp)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// writeHTTPError answers like the gateway does for generated routes: the status as JSON
// with the HTTP code of its gRPC code.
func writeHTTPError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	b, _ := protojson.Marshal(st.Proto())
	_, _ = w.Write(b)
}
