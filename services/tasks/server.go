package tasks

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Server is the gRPC TaskService: it converts types and maps errors; Manager does the work.
type Server struct {
	tasksv1.UnimplementedTaskServiceServer
	manager *Manager
}

// NewServer returns the TaskService over m.
func NewServer(m *Manager) *Server { return &Server{manager: m} }

var _ tasksv1.TaskServiceServer = (*Server)(nil)

// workspaceOf is the workspace the caller acts in: its own, or for Vigil's services the
// one named in the request metadata (the platform's authorizer resolves both).
func workspaceOf(ctx context.Context) string {
	if p := rpc.PrincipalFrom(ctx); p != nil {
		return p.WorkspaceID
	}
	return ""
}

func (s *Server) CreateImportJob(ctx context.Context, req *tasksv1.CreateImportJobRequest) (*tasksv1.CreateImportJobResponse, error) {
	in := ImportRequest{
		Content:   req.GetContent(),
		ObjectKey: req.GetObjectKey(),
		FileName:  req.GetFileName(),
		GroupIDs:  req.GetGroupIds(),
	}
	switch req.GetFormat() {
	case tasksv1.ImportFormat_IMPORT_FORMAT_ZIP:
		in.Format = jobs.ImportFormatZIP
	case tasksv1.ImportFormat_IMPORT_FORMAT_CSV:
		in.Format = jobs.ImportFormatCSV
	}
	j, err := s.manager.CreateImport(ctx, workspaceOf(ctx), in)
	if err != nil {
		return nil, toStatus(err)
	}
	return &tasksv1.CreateImportJobResponse{Job: toProto(j)}, nil
}

func (s *Server) CreateReextractJob(ctx context.Context, _ *tasksv1.CreateReextractJobRequest) (*tasksv1.CreateReextractJobResponse, error) {
	j, err := s.manager.CreateReextract(ctx, workspaceOf(ctx))
	if err != nil {
		return nil, toStatus(err)
	}
	return &tasksv1.CreateReextractJobResponse{Job: toProto(j)}, nil
}

func (s *Server) CreateRetentionPurgeJob(ctx context.Context, _ *tasksv1.CreateRetentionPurgeJobRequest) (*tasksv1.CreateRetentionPurgeJobResponse, error) {
	j, err := s.manager.CreateRetentionPurge(ctx, workspaceOf(ctx))
	if err != nil {
		return nil, toStatus(err)
	}
	return &tasksv1.CreateRetentionPurgeJobResponse{Job: toProto(j)}, nil
}

func (s *Server) GetJob(ctx context.Context, req *tasksv1.GetJobRequest) (*tasksv1.GetJobResponse, error) {
	id, err := ParseJobID(req.GetJobId())
	if err != nil {
		return nil, toStatus(err)
	}
	j, err := s.manager.Get(ctx, workspaceOf(ctx), id)
	if err != nil {
		return nil, toStatus(err)
	}
	return &tasksv1.GetJobResponse{Job: toProto(j)}, nil
}

func (s *Server) ListJobs(ctx context.Context, req *tasksv1.ListJobsRequest) (*tasksv1.ListJobsResponse, error) {
	f := ListFilter{PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	for _, st := range req.GetStatuses() {
		f.Statuses = append(f.Statuses, Status(st)) // same numbering; unknown values are refused
	}
	for _, t := range req.GetTypes() {
		f.Types = append(f.Types, Type(t))
	}
	list, next, err := s.manager.List(ctx, workspaceOf(ctx), f)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &tasksv1.ListJobsResponse{NextPageToken: next, Jobs: make([]*tasksv1.Job, len(list))}
	for i, j := range list {
		out.Jobs[i] = toProto(j)
	}
	return out, nil
}

func (s *Server) CancelJob(ctx context.Context, req *tasksv1.CancelJobRequest) (*tasksv1.CancelJobResponse, error) {
	id, err := ParseJobID(req.GetJobId())
	if err != nil {
		return nil, toStatus(err)
	}
	j, err := s.manager.Cancel(ctx, workspaceOf(ctx), id)
	if err != nil {
		return nil, toStatus(err)
	}
	return &tasksv1.CancelJobResponse{Job: toProto(j)}, nil
}

func (s *Server) RetryJob(ctx context.Context, req *tasksv1.RetryJobRequest) (*tasksv1.RetryJobResponse, error) {
	id, err := ParseJobID(req.GetJobId())
	if err != nil {
		return nil, toStatus(err)
	}
	j, err := s.manager.Retry(ctx, workspaceOf(ctx), id)
	if err != nil {
		return nil, toStatus(err)
	}
	return &tasksv1.RetryJobResponse{Job: toProto(j)}, nil
}

func toProto(j Job) *tasksv1.Job {
	out := &tasksv1.Job{
		JobId:       formatJobID(j.ID),
		Type:        tasksv1.JobType(j.Type),
		Status:      tasksv1.JobStatus(j.Status),
		Attempt:     int32(j.Attempt),
		MaxAttempts: int32(j.MaxAttempts),
		Progress: &tasksv1.JobProgress{
			Done: j.Progress.Done, Total: j.Progress.Total, Failed: j.Progress.Failed,
		},
		CreateTime:      timestamppb.New(j.CreatedAt),
		AttemptTime:     optionalTime(j.AttemptedAt),
		FinishTime:      optionalTime(j.FinishedAt),
		NextAttemptTime: optionalTime(j.NextAttemptAt),
		Description:     j.Description,
		ItemErrors:      j.Progress.ItemErrors,
	}
	for _, e := range j.Errors {
		out.Errors = append(out.Errors, &tasksv1.JobError{
			Attempt: int32(e.Attempt), Time: timestamppb.New(e.At), Message: e.Message,
		})
	}
	return out
}

func optionalTime(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}
