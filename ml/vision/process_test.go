package vision

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vigilhq/vigil/ml/geom"
)

func TestProcessChainsUnitsOverGivenFaces(t *testing.T) {
	img := photo(t, "two_people.jpg")
	full := process(t, img, UnitFaceDetector, UnitAge)
	require.Len(t, faces(full), 2)

	// A client holding only the boxes asks for age alone: no detection runs
	// (the given IDs survive), and the ages match the full pipeline's.
	given := []*Object{}
	for i, f := range faces(full) {
		given = append(given, &Object{ID: []string{"mine-a", "mine-b"}[i], Class: ClassFace, Box: f.Box})
	}
	s, err := engine.Process(context.Background(), Request{Image: img, Units: NewUnits(UnitAge), Objects: given})
	require.NoError(t, err)
	require.Len(t, s.Objects, 2)
	for i, o := range s.Objects {
		require.Equal(t, given[i].ID, o.ID)
		require.Equal(t, 1.0, o.Confidence, "client objects are certain")
		require.NotNil(t, o.Age)
		require.InDelta(t, faces(full)[i].Age.Years, o.Age.Years, 0.01)
		require.Nil(t, o.Template)
	}

	// A template from a box without points: the fitter supplies the 5 points,
	// and the template still matches the detector-point one.
	withPoints := faces(process(t, img, UnitTemplateExtractor))
	s, err = engine.Process(context.Background(), Request{Image: img, Units: NewUnits(UnitTemplateExtractor),
		Objects: []*Object{{Class: ClassFace, Box: withPoints[0].Box}}})
	require.NoError(t, err)
	sim, err := Similarity(withPoints[0].Template, s.Objects[0].Template)
	require.NoError(t, err)
	require.Greater(t, sim, 0.8)

	// Bodies given with face units: the bodies pass through, the detector
	// runs for faces.
	s, err = engine.Process(context.Background(), Request{Image: img, Units: NewUnits(UnitGender),
		Objects: []*Object{{Class: ClassBody, Box: geom.Box{X1: 1, Y1: 1, X2: 500, Y2: 600}}}})
	require.NoError(t, err)
	require.Len(t, faces(s), 2)
	require.Len(t, bodies(s), 1)
	require.Equal(t, "body-1", bodies(s)[0].ID)
}

func TestProcessFullPipelineNoFace(t *testing.T) {
	s := process(t, photo(t, "noface_coffee.png"), AllUnits...)
	require.Empty(t, s.Objects, "no face is an empty list, not an error")
	require.Equal(t, 600, s.Width)
}

func TestProcessRejectsBadRequests(t *testing.T) {
	img := photo(t, "obama_small.jpg")
	cases := []struct {
		name string
		req  Request
	}{
		{"no units", Request{Image: img}},
		{"no image", Request{Units: NewUnits(UnitAge)}},
		{"inverted box", Request{Image: img, Units: NewUnits(UnitAge), Objects: []*Object{{Class: ClassFace, Box: geom.Box{X1: 50, Y1: 50, X2: 10, Y2: 80}}}}},
		{"box outside", Request{Image: img, Units: NewUnits(UnitAge), Objects: []*Object{{Class: ClassFace, Box: geom.Box{X1: 400, Y1: 10, X2: 500, Y2: 80}}}}},
		{"nan box", Request{Image: img, Units: NewUnits(UnitAge), Objects: []*Object{{Class: ClassFace, Box: geom.Box{X1: math.NaN(), Y1: 10, X2: 50, Y2: 80}}}}},
		{"no class", Request{Image: img, Units: NewUnits(UnitAge), Objects: []*Object{{Box: geom.Box{X1: 1, Y1: 1, X2: 50, Y2: 80}}}}},
		{"three keypoints", Request{Image: img, Units: NewUnits(UnitAge), Objects: []*Object{{Class: ClassFace, Box: geom.Box{X1: 1, Y1: 1, X2: 50, Y2: 80}, Keypoints: make([]geom.Point, 3)}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := engine.Process(context.Background(), c.req)
			require.ErrorIs(t, err, ErrInvalidRequest)
		})
	}
	_, err := ParseUnits("age,teleport")
	require.ErrorIs(t, err, ErrInvalidRequest)
	u, err := ParseUnits(" age, face_detector ,")
	require.NoError(t, err)
	require.Equal(t, []Unit{UnitFaceDetector, UnitAge}, u.List())
}

func TestProcessHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := engine.Process(ctx, Request{Image: photo(t, "obama_small.jpg"), Units: NewUnits(UnitFaceDetector)})
	require.ErrorIs(t, err, context.Canceled)
}
