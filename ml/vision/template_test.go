package vision

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// identities are the labelled people of testdata/faces/SOURCES.md. (The
// liveness photos and two_people.jpg carry no identity labels, so they are
// left out of the pairs.)
var identities = map[string]string{
	"obama_1.jpg": "obama", "obama_2.jpg": "obama", "obama_3.jpg": "obama",
	"obama_small.jpg": "obama", "obama_partial_face.jpg": "obama",
	"biden_1.jpg": "biden", "biden_2.jpg": "biden",
	"astronaut_collins.png": "collins", "cameraman_person.png": "cameraman",
}

func TestTemplatesSeparateSameFromDifferentPeople(t *testing.T) {
	tpl := map[string]*Template{}
	for file := range identities {
		f := largestFace(t, process(t, photo(t, file), UnitTemplateExtractor))
		require.NotNil(t, f.Template)
		require.Equal(t, TemplateModel, f.Template.Model)
		require.Equal(t, engine.TemplateVersion(), f.Template.Version)
		require.Len(t, f.Template.Vector, 128)
		var n float64
		for _, v := range f.Template.Vector {
			n += float64(v) * float64(v)
		}
		require.InDelta(t, 1, math.Sqrt(n), 1e-4, "L2-normalised")
		tpl[file] = f.Template
	}
	minSame, maxDiff := 1.0, -1.0
	for a := range tpl {
		for b := range tpl {
			if a >= b {
				continue
			}
			s, err := Similarity(tpl[a], tpl[b])
			require.NoError(t, err)
			if identities[a] == identities[b] {
				minSame = math.Min(minSame, s)
				require.GreaterOrEqual(t, s, VerifyThreshold, "same person %s / %s", a, b)
			} else {
				maxDiff = math.Max(maxDiff, s)
				require.Less(t, s, VerifyThreshold, "different people %s / %s", a, b)
			}
		}
	}
	t.Logf("min same-person similarity %.3f, max different-person %.3f, threshold %.2f", minSame, maxDiff, VerifyThreshold)
	require.Greater(t, minSame-maxDiff, 0.2, "a clear margin between the two groups")
}

func TestTemplatesOfDifferentModelsAreIncomparable(t *testing.T) {
	a := &Template{Model: TemplateModel, Version: "1+aaaa", Vector: []float32{1, 0}}
	b := &Template{Model: TemplateModel, Version: "1+bbbb", Vector: []float32{1, 0}}
	_, err := Similarity(a, b)
	require.ErrorIs(t, err, ErrIncomparable)
	b.Version, b.Model = a.Version, "other-model"
	_, err = Similarity(a, b)
	require.ErrorIs(t, err, ErrIncomparable)
	s, err := Similarity(a, a)
	require.NoError(t, err)
	require.InDelta(t, 1, s, 1e-9)
}

func TestTemplateBatchEqualsSingleRuns(t *testing.T) {
	img := photo(t, "two_people.jpg")
	det := faces(process(t, img, UnitFaceDetector))
	require.Len(t, det, 2)
	single := make([]*Template, len(det))
	for i := range det {
		one := []*Object{{Class: ClassFace, Box: det[i].Box, Keypoints: det[i].Keypoints}}
		require.NoError(t, engine.templates.extract(context.Background(), img, one))
		single[i] = one[0].Template
	}
	// 16 faces (the two, alternating): split across the session pool into concurrent
	// batched Runs (two of 8 with two sessions); one Run of both faces, directly.
	many := make([]*Object, 16)
	for i := range many {
		many[i] = &Object{Class: ClassFace, Box: det[i%2].Box, Keypoints: det[i%2].Keypoints}
	}
	require.NoError(t, engine.templates.extract(context.Background(), img, many))
	pair := []*Object{{Class: ClassFace, Box: det[0].Box, Keypoints: det[0].Keypoints}, {Class: ClassFace, Box: det[1].Box, Keypoints: det[1].Keypoints}}
	require.NoError(t, engine.templates.extractBatch(context.Background(), img, pair))
	for i, o := range append(many, pair...) {
		s, err := Similarity(o.Template, single[i%2])
		require.NoError(t, err)
		require.InDelta(t, 1, s, 1e-5, "face %d of the batch gives its single-run template", i)
	}
}
