package matcher

import (
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
)

// Conversions between the contract's messages and the domain types.

func templatesFromProto(in []*matcherv1.PersonTemplate) []Template {
	out := make([]Template, len(in))
	for i, t := range in {
		out[i] = Template{ID: t.GetTemplateId(), PersonID: t.GetPersonId(),
			ModelID: t.GetTemplate().GetModel(), Vector: t.GetTemplate().GetVector()}
	}
	return out
}

func templatesToProto(in []Template) []*matcherv1.PersonTemplate {
	out := make([]*matcherv1.PersonTemplate, len(in))
	for i, t := range in {
		out[i] = &matcherv1.PersonTemplate{TemplateId: t.ID, PersonId: t.PersonID,
			Template: &commonv1.Template{Vector: t.Vector, Model: t.ModelID}}
	}
	return out
}

func searchModeFromProto(m matcherv1.SearchMode) SearchMode {
	switch m {
	case matcherv1.SearchMode_SEARCH_MODE_EXACT:
		return ModeExact
	case matcherv1.SearchMode_SEARCH_MODE_APPROXIMATE:
		return ModeApproximate
	}
	return ModeAuto
}

func searchModeToProto(m SearchMode) matcherv1.SearchMode {
	switch m {
	case ModeExact:
		return matcherv1.SearchMode_SEARCH_MODE_EXACT
	case ModeApproximate:
		return matcherv1.SearchMode_SEARCH_MODE_APPROXIMATE
	}
	return matcherv1.SearchMode_SEARCH_MODE_UNSPECIFIED
}

func resultsToProto(in [][]Match) []*matcherv1.SearchResult {
	out := make([]*matcherv1.SearchResult, len(in))
	for i, ms := range in {
		r := &matcherv1.SearchResult{Matches: make([]*matcherv1.Match, len(ms))}
		for j, m := range ms {
			r.Matches[j] = &matcherv1.Match{PersonId: m.PersonID, TemplateId: m.TemplateID, Score: m.Score}
		}
		out[i] = r
	}
	return out
}

func resultsFromProto(in []*matcherv1.SearchResult) [][]Match {
	out := make([][]Match, len(in))
	for i, r := range in {
		ms := make([]Match, len(r.GetMatches()))
		for j, m := range r.GetMatches() {
			ms[j] = Match{PersonID: m.GetPersonId(), TemplateID: m.GetTemplateId(), Score: m.GetScore()}
		}
		out[i] = ms
	}
	return out
}

func queriesFromProto(in []*commonv1.Template) (model string, vecs [][]float32, err error) {
	vecs = make([][]float32, len(in))
	for i, q := range in {
		if i == 0 {
			model = q.GetModel()
		} else if q.GetModel() != model {
			return "", nil, errQueriesMixModels(i)
		}
		vecs[i] = q.GetVector()
	}
	return model, vecs, nil
}

func queriesToProto(model string, vecs [][]float32) []*commonv1.Template {
	out := make([]*commonv1.Template, len(vecs))
	for i, v := range vecs {
		out[i] = &commonv1.Template{Vector: v, Model: model}
	}
	return out
}

func statsToProto(shard string, in []GalleryStats) []*matcherv1.GalleryStats {
	out := make([]*matcherv1.GalleryStats, len(in))
	for i, s := range in {
		out[i] = &matcherv1.GalleryStats{WorkspaceId: s.Workspace, Model: s.ModelID, Dimension: int32(s.Dim),
			Templates: int64(s.Templates), Persons: int64(s.Persons), IvfLists: int32(s.IVFLists),
			MemoryBytes: s.MemoryBytes, Shard: shard}
	}
	return out
}
