package backend

import (
	"context"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
)

// EventQueryServer implements backendv1.EventQueryServiceServer.
type EventQueryServer struct {
	backendv1.UnimplementedEventQueryServiceServer
	b *Backend
}

func eventToProto(e *Event) *backendv1.Event {
	return &backendv1.Event{
		Id: e.ID, Type: backendv1.EventType(e.Type), EventTime: ts(e.EventTime), CameraId: strPtr(e.CameraID),
		AgentId: strPtr(e.AgentID), ActivityId: e.ActivityID, PersonId: strPtr(e.PersonID), GroupId: strPtr(e.GroupID),
		Score: e.Score,
		Attributes: &backendv1.EventAttributes{
			Age: e.Age, Gender: backendv1.Gender(e.Gender), Emotion: e.Emotion, Mask: e.Mask, Live: e.Live, Quality: e.Quality,
		},
		FaceObjectKey: e.FaceObjectKey, FrameObjectKey: e.FrameObjectKey, FaceBox: boxOf(e.FaceBox),
	}
}

func (s *EventQueryServer) ListEvents(ctx context.Context, req *backendv1.ListEventsRequest) (*backendv1.ListEventsResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	f := EventFilter{
		CameraIDs: req.GetCameraIds(), PersonID: req.GetPersonId(), GroupID: req.GetGroupId(), Type: int16(req.GetType()),
		MinAge: req.GetMinAge(), MaxAge: req.GetMaxAge(), Gender: int16(req.GetGender()), Mask: req.Mask, Emotion: req.GetEmotion(),
	}
	if tr := req.GetTimeRange(); tr != nil {
		if tr.StartTime != nil {
			f.Start = tr.StartTime.AsTime()
		}
		if tr.EndTime != nil {
			f.End = tr.EndTime.AsTime()
		}
	}
	es, next, err := s.b.ListEvents(ctx, sc, f, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListEventsResponse{NextPageToken: next}
	for _, e := range es {
		out.Events = append(out.Events, eventToProto(e))
	}
	return out, nil
}

func (s *EventQueryServer) GetEvent(ctx context.Context, req *backendv1.GetEventRequest) (*backendv1.GetEventResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	e, err := s.b.GetEvent(ctx, sc, req.GetEventId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetEventResponse{Event: eventToProto(e)}, nil
}
