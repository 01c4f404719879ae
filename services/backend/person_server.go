package backend

import (
	"context"

	"github.com/google/uuid"

	"google.golang.org/protobuf/types/known/structpb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
)

// PersonServer implements backendv1.PersonServiceServer.
type PersonServer struct {
	backendv1.UnimplementedPersonServiceServer
	b *Backend
}

func photoToProto(ph *Photo) *backendv1.Photo {
	return &backendv1.Photo{
		Id: ph.ID.String(), ObjectKey: ph.ObjectKey, ContentType: ph.ContentType, FaceBox: boxOf(ph.FaceBox),
		FaceConfidence: ph.FaceConfidence, TemplateModel: ph.TemplateModel, CreateTime: ts(ph.CreateTime),
	}
}

func personToProto(p *Person) *backendv1.Person {
	out := &backendv1.Person{
		Id: p.ID.String(), ExternalId: p.ExternalID, Name: p.Name, GroupIds: idStrings(p.GroupIDs),
		Version: p.Version, CreateTime: ts(p.CreateTime), UpdateTime: ts(p.UpdateTime),
	}
	if fields, err := structpb.NewStruct(p.CustomFields); err == nil {
		out.CustomFields = fields
	}
	if p.MainPhotoID != nil {
		out.MainPhotoId = p.MainPhotoID.String()
	}
	for _, ph := range p.Photos {
		out.Photos = append(out.Photos, photoToProto(ph))
	}
	return out
}

func (s *PersonServer) CreatePerson(ctx context.Context, req *backendv1.CreatePersonRequest) (*backendv1.CreatePersonResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	in := req.GetPerson()
	groups, err := parseIDs("person.group_ids", in.GetGroupIds())
	if err != nil {
		return nil, toStatus(err)
	}
	// The license is asked before the transaction (peer calls never hold a connection).
	if !s.b.db.seen(ctx, sc.key(), req.GetRequestId()) {
		if err := s.b.checkLimit(ctx, sc, licensingv1.Resource_RESOURCE_PERSONS, 1); err != nil {
			return nil, toStatus(err)
		}
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "CreatePerson", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreatePersonResponse, error) {
			p, err := s.b.CreatePerson(ctx, sc, &Person{
				ExternalID: in.GetExternalId(), Name: in.GetName(), CustomFields: in.GetCustomFields().AsMap(), GroupIDs: groups,
			})
			if err != nil {
				return nil, err
			}
			return &backendv1.CreatePersonResponse{Person: personToProto(p)}, nil
		}, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	s.b.reportUsage(ctx, sc, licensingv1.Resource_RESOURCE_PERSONS)
	return resp, nil
}

func (s *PersonServer) GetPerson(ctx context.Context, req *backendv1.GetPersonRequest) (*backendv1.GetPersonResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	p, err := s.b.PersonCard(ctx, sc, req.GetPersonId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetPersonResponse{Person: p}, nil
}

func (s *PersonServer) ListPersons(ctx context.Context, req *backendv1.ListPersonsRequest) (*backendv1.ListPersonsResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	ps, next, err := s.b.ListPersons(ctx, sc, PersonFilter{
		NameContains: req.GetNameContains(), ExternalID: req.GetExternalId(), GroupID: req.GetGroupId(),
		CustomFieldEquals: req.GetCustomFieldEquals(),
	}, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListPersonsResponse{NextPageToken: next}
	for _, p := range ps {
		out.Persons = append(out.Persons, personToProto(p))
	}
	return out, nil
}

func (s *PersonServer) UpdatePerson(ctx context.Context, req *backendv1.UpdatePersonRequest) (*backendv1.UpdatePersonResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	paths, err := maskPaths(req.GetUpdateMask(), "external_id", "name", "custom_fields", "group_ids", "main_photo_id")
	if err != nil {
		return nil, toStatus(err)
	}
	in := req.GetPerson()
	resp, err := mutate(ctx, s.b.db, sc.key(), "UpdatePerson", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.UpdatePersonResponse, error) {
			p, err := s.b.UpdatePerson(ctx, sc, in.GetId(), func(p *Person) error {
				if paths["external_id"] {
					p.ExternalID = in.GetExternalId()
				}
				if paths["name"] {
					p.Name = in.GetName()
				}
				if paths["custom_fields"] {
					p.CustomFields = in.GetCustomFields().AsMap()
				}
				if paths["group_ids"] {
					groups, err := parseIDs("person.group_ids", in.GetGroupIds())
					if err != nil {
						return err
					}
					p.GroupIDs = groups
				}
				if paths["main_photo_id"] {
					if in.GetMainPhotoId() == "" {
						p.MainPhotoID = nil
					} else {
						id, err := parseID("person.main_photo_id", in.GetMainPhotoId())
						if err != nil {
							return err
						}
						p.MainPhotoID = &id
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			return &backendv1.UpdatePersonResponse{Person: personToProto(p)}, nil
		}, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	if paths["group_ids"] {
		// After the commit (and again on a replay: it is idempotent).
		if err := s.b.syncMatcherGroups(ctx, sc, uuid.MustParse(resp.GetPerson().GetId())); err != nil {
			return nil, toStatus(err)
		}
	}
	return resp, nil
}

func (s *PersonServer) DeletePerson(ctx context.Context, req *backendv1.DeletePersonRequest) (*backendv1.DeletePersonResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.b.ErasePersonData(ctx, sc, req.GetPersonId()); err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "DeletePerson", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.DeletePersonResponse, error) {
			return &backendv1.DeletePersonResponse{}, s.b.DeletePerson(ctx, sc, req.GetPersonId())
		}, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	s.b.reportUsage(ctx, sc, licensingv1.Resource_RESOURCE_PERSONS)
	return resp, nil
}

func (s *PersonServer) AddPhoto(ctx context.Context, req *backendv1.AddPhotoRequest) (*backendv1.AddPhotoResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	// Face, template and image storage first, outside the transaction; the row in it; the
	// matcher after the commit (idempotent, so a replay repairs a matcher that missed it).
	pp, err := s.b.PreparePhoto(ctx, sc, req.GetPersonId(), req.GetImage())
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "AddPhoto", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.AddPhotoResponse, error) {
			ph, p, err := s.b.StorePhoto(ctx, sc, pp, req.GetSetMain())
			if err != nil {
				return nil, err
			}
			return &backendv1.AddPhotoResponse{Photo: photoToProto(ph), Person: personToProto(p)}, nil
		}, nil)
	if err != nil || resp.GetPhoto().GetId() != pp.ID.String() {
		s.b.Discard(ctx, pp) // failed, or a replay of a photo stored before
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.b.IndexPhoto(ctx, sc, req.GetPersonId(), resp.GetPhoto().GetId()); err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

func (s *PersonServer) DeletePhoto(ctx context.Context, req *backendv1.DeletePhotoRequest) (*backendv1.DeletePhotoResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.b.UnindexPhoto(ctx, sc, req.GetPersonId(), req.GetPhotoId()); err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "DeletePhoto", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.DeletePhotoResponse, error) {
			p, err := s.b.DeletePhoto(ctx, sc, req.GetPersonId(), req.GetPhotoId())
			if err != nil {
				return nil, err
			}
			return &backendv1.DeletePhotoResponse{Person: personToProto(p)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *PersonServer) GetPhotoImage(ctx context.Context, req *backendv1.GetPhotoImageRequest) (*backendv1.GetPhotoImageResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	data, ct, err := s.b.PhotoImage(ctx, sc, req.GetPersonId(), req.GetPhotoId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetPhotoImageResponse{Image: data, ContentType: ct}, nil
}

func (s *PersonServer) Identify(ctx context.Context, req *backendv1.IdentifyRequest) (*backendv1.IdentifyResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	cands, box, err := s.b.Identify(ctx, sc, req.GetImage(), req.GetGroupId(), req.GetTopK(), req.GetThreshold())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.IdentifyResponse{FaceBox: box}
	for _, c := range cands {
		out.Candidates = append(out.Candidates, &backendv1.IdentifyCandidate{Person: personToProto(c.Person), Score: c.Score})
	}
	return out, nil
}

func (s *PersonServer) ListPersonChanges(ctx context.Context, req *backendv1.ListPersonChangesRequest) (*backendv1.ListPersonChangesResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	changes, more, err := s.b.PersonChanges(ctx, sc, req.GetAfterVersion(), req.GetPageSize())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListPersonChangesResponse{LastVersion: req.GetAfterVersion(), More: more}
	for _, c := range changes {
		pc := &backendv1.PersonChange{Version: c.Version, PersonId: c.PersonID.String(), Deleted: c.Deleted}
		if c.Person != nil {
			pc.Person = personToProto(c.Person)
		}
		for _, t := range c.Templates {
			pc.Templates = append(pc.Templates, &backendv1.PhotoTemplate{PhotoId: t.PhotoID.String(), Template: t.Template})
		}
		out.Changes = append(out.Changes, pc)
		out.LastVersion = c.Version
	}
	return out, nil
}

func (s *PersonServer) ReextractTemplates(ctx context.Context, req *backendv1.ReextractTemplatesRequest) (*backendv1.ReextractTemplatesResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	r, err := s.b.ReextractTemplates(ctx, sc, req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.ReextractTemplatesResponse{
		Reextracted: r.Reextracted, Skipped: r.Skipped, Failures: r.Failures,
		NextPageToken: r.NextPageToken, Total: r.Total, Model: r.Model,
	}, nil
}
