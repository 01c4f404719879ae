package vision

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDetectFacesOnPhotos(t *testing.T) {
	cases := []struct {
		file      string
		threshold float64
		want      int
	}{
		{"two_people.jpg", 0, 2},
		{"obama_1.jpg", 0, 1},
		{"obama_2.jpg", 0, 1},
		{"obama_3.jpg", 0, 1},
		{"obama_small.jpg", 0, 1},
		{"obama_partial_face.jpg", 0, 1},
		{"biden_1.jpg", 0, 1},
		{"astronaut_collins.png", 0, 1},
		{"cameraman_person.png", 0, 1},
		{"liveness_real_T1.jpg", 0, 1},
		{"noface_coffee.png", 0, 0},
		{"noface_rocket.jpg", 0, 0},
		// biden_2 has two weak boxes (0.61-0.72) on cut-off faces at the
		// edge; a stricter threshold leaves the main face.
		{"biden_2.jpg", 0.8, 1},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			img := photo(t, c.file)
			s, err := engine.Process(context.Background(), Request{
				Image: img, Units: NewUnits(UnitFaceDetector), Face: FaceOptions{ScoreThreshold: c.threshold},
			})
			require.NoError(t, err)
			fs := faces(s)
			require.Len(t, fs, c.want)
			for _, f := range fs {
				require.GreaterOrEqual(t, f.Confidence, 0.6)
				require.Len(t, f.Keypoints, 5)
				require.Greater(t, f.Box.W(), 10.0)
				// Keypoints lie in the box, eyes above the mouth, image-left eye first.
				for _, p := range f.Keypoints {
					require.True(t, p.X >= f.Box.X1-2 && p.X <= f.Box.X2+2 && p.Y >= f.Box.Y1-2 && p.Y <= f.Box.Y2+2, "keypoint %v outside %v", p, f.Box)
				}
				require.Less(t, f.Keypoints[0].X, f.Keypoints[1].X)
				require.Less(t, f.Keypoints[0].Y, f.Keypoints[3].Y)
			}
		})
	}
}

func TestDetectFacesFindsBothPeopleSeparately(t *testing.T) {
	s := process(t, photo(t, "two_people.jpg"), UnitFaceDetector)
	fs := faces(s)
	require.Len(t, fs, 2)
	mid := float64(s.Width) / 2
	left, right := 0, 0
	for _, f := range fs {
		if f.Box.Center().X < mid {
			left++
		} else {
			right++
		}
	}
	require.Equal(t, [2]int{1, 1}, [2]int{left, right}, "one face in each half")
	require.Equal(t, "face-1", fs[0].ID)
	require.Equal(t, "face-2", fs[1].ID)
}

func TestDetectFacesMinFaceSize(t *testing.T) {
	img := photo(t, "obama_small.jpg") // the face is about 110 px
	for _, c := range []struct {
		min  float64
		want int
	}{{50, 1}, {200, 0}} {
		s, err := engine.Process(context.Background(), Request{Image: img, Units: NewUnits(UnitFaceDetector), Face: FaceOptions{MinFaceSize: c.min}})
		require.NoError(t, err)
		require.Len(t, faces(s), c.want, "min face size %v", c.min)
	}
}

func TestDetectBodies(t *testing.T) {
	cases := []struct {
		file string
		want int
	}{
		{"two_people.jpg", 2},
		{"obama_1.jpg", 1},
		{"cameraman_person.png", 1},
		{"noface_coffee.png", 0},
		{"noface_rocket.jpg", 0},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			s := process(t, photo(t, c.file), UnitBodyDetector)
			require.Len(t, bodies(s), c.want)
			require.Empty(t, faces(s), "the body detector alone adds no faces")
			for _, b := range bodies(s) {
				require.Greater(t, b.Box.H(), float64(s.Height)/3, "a person's box covers much of the photo")
			}
		})
	}
}

func TestDetectorInputSize(t *testing.T) {
	cases := []struct{ w, h, iw, ih int }{
		{640, 640, 640, 640},
		{1126, 661, 640, 384}, // 661·640/1126 = 375.7 → 384
		{910, 1137, 544, 640}, // 910·640/1137 = 512.2 → 544
		{320, 240, 640, 480},  // small photos are scaled up
		{10, 5000, 32, 640},
	}
	for _, c := range cases {
		iw, ih := yunetInputSize(c.w, c.h)
		require.Equal(t, [2]int{c.iw, c.ih}, [2]int{iw, ih}, "%dx%d", c.w, c.h)
		require.Zero(t, iw%32)
		require.Zero(t, ih%32)
	}
}
