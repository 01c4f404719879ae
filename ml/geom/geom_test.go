package geom

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEstimateSimilarityRecoversTransform(t *testing.T) {
	want := Similarity{A: 1.3 * math.Cos(0.4), B: 1.3 * math.Sin(0.4), TX: 12, TY: -7}
	src := []Point{{38.29, 51.69}, {73.53, 51.50}, {56.02, 71.73}, {41.54, 92.36}, {70.72, 92.20}}
	dst := make([]Point, len(src))
	for i, p := range src {
		dst[i] = want.Apply(p)
	}
	got, err := EstimateSimilarity(src, dst)
	require.NoError(t, err)
	require.InDelta(t, want.A, got.A, 1e-9)
	require.InDelta(t, want.B, got.B, 1e-9)
	require.InDelta(t, want.TX, got.TX, 1e-9)
	require.InDelta(t, want.TY, got.TY, 1e-9)

	_, err = EstimateSimilarity([]Point{{1, 1}, {1, 1}}, []Point{{0, 0}, {2, 2}})
	require.ErrorIs(t, err, ErrDegenerate)
}

func TestNMS(t *testing.T) {
	boxes := []Box{{0, 0, 10, 10}, {1, 1, 11, 11}, {20, 20, 30, 30}, {0, 0, 9, 10}}
	scores := []float64{0.8, 0.9, 0.5, 0.7}
	require.Equal(t, []int{1, 2}, NMS(boxes, scores, 0.3))
	require.Equal(t, []int{1, 0, 3, 2}, NMS(boxes, scores, 1.0))
}

// meanFace is a handful of non-coplanar points, enough for the solve.
var meanFace = []Point3{{0, 0, 0}, {0, 63, 12}, {-45, -34, 27}, {45, -34, 27}, {-30, 30, 25}, {30, 30, 25}, {-16, -33, 18}, {16, -33, 18}}

func TestEstimatePoseRecoversKnownRotation(t *testing.T) {
	cases := []struct{ yaw, pitch, roll float64 }{
		{0, 0, 0}, {30, 0, 0}, {-30, 0, 0}, {0, 20, 0}, {0, -20, 0}, {0, 0, 15}, {25, -10, 8},
	}
	for _, c := range cases {
		// Build R from the documented convention: the reported yaw and pitch
		// are the negated raw angles of Rz·Ry·Rx.
		R := mulR(mulR(rotZ(c.roll), rotY(-c.yaw)), rotX(-c.pitch))
		img := make([]Point, len(meanFace))
		for i, p := range meanFace {
			X := [3]float64{p.X, p.Y, p.Z}
			img[i] = Point{2.5*dot3(R[0], X) + 300, 2.5*dot3(R[1], X) + 200}
		}
		got, err := EstimatePose(meanFace, img)
		require.NoError(t, err)
		require.InDelta(t, c.yaw, got.Yaw, 0.5, "yaw %+v", c)
		require.InDelta(t, c.pitch, got.Pitch, 0.5, "pitch %+v", c)
		require.InDelta(t, c.roll, got.Roll, 0.5, "roll %+v", c)
	}
}

func TestEstimatePoseSignsMatchImageDirections(t *testing.T) {
	// Turning the head to the image's right moves the nose tip (the point
	// nearest the camera) right of the eye midpoint; looking up moves it up.
	yawRight := mulR(mulR(rotZ(0), rotY(-20)), rotX(0))
	nose := dot3(yawRight[0], [3]float64{0, 0, 0})
	eyeMid := (dot3(yawRight[0], [3]float64{-45, -34, 27}) + dot3(yawRight[0], [3]float64{45, -34, 27})) / 2
	require.Greater(t, nose, eyeMid, "positive yaw puts the nose right of the eyes")
	lookUp := mulR(mulR(rotZ(0), rotY(0)), rotX(-20))
	noseY := dot3(lookUp[1], [3]float64{0, 0, 0})
	eyeY := dot3(lookUp[1], [3]float64{0, -34, 27})
	chinY := dot3(lookUp[1], [3]float64{0, 63, 12})
	require.Less(t, (noseY-eyeY)/(chinY-eyeY), 34.0/97.0, "positive pitch moves the nose up between eyes and chin")
}

func deg(a float64) float64 { return a * math.Pi / 180 }
func rotX(a float64) [3][3]float64 {
	c, s := math.Cos(deg(a)), math.Sin(deg(a))
	return [3][3]float64{{1, 0, 0}, {0, c, -s}, {0, s, c}}
}
func rotY(a float64) [3][3]float64 {
	c, s := math.Cos(deg(a)), math.Sin(deg(a))
	return [3][3]float64{{c, 0, s}, {0, 1, 0}, {-s, 0, c}}
}
func rotZ(a float64) [3][3]float64 {
	c, s := math.Cos(deg(a)), math.Sin(deg(a))
	return [3][3]float64{{c, -s, 0}, {s, c, 0}, {0, 0, 1}}
}
