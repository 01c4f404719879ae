package vision

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
)

// AgeTolerance is how far, in years, our age may be from face-api's own
// pipeline on the same photo (models/SOURCES.md §8 table). The model itself
// has a reported MAE of 4.5 years; our landmarks come from a different
// model than face-api's, which moves the crop slightly.
const AgeTolerance = 5.0

func TestAgeAndGenderOnLabelledPhotos(t *testing.T) {
	cases := []struct {
		file       string
		faceAPIAge float64
		gender     GenderValue
	}{
		{"obama_1.jpg", 49.4, GenderMale},
		{"obama_2.jpg", 47.7, GenderMale},
		{"obama_3.jpg", 52.7, GenderMale},
		{"obama_small.jpg", 48.7, GenderMale},
		{"obama_partial_face.jpg", 55.7, GenderMale},
		{"biden_1.jpg", 67.3, GenderMale},
		{"biden_2.jpg", 64.1, GenderMale},
		{"astronaut_collins.png", 32.4, GenderFemale},
		{"cameraman_person.png", 18.4, GenderMale},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f := largestFace(t, process(t, photo(t, c.file), UnitAge, UnitGender))
			require.NotNil(t, f.Age)
			require.InDelta(t, c.faceAPIAge, f.Age.Years, AgeTolerance)
			require.NotNil(t, f.Gender)
			require.Equal(t, c.gender, f.Gender.Value)
			require.GreaterOrEqual(t, f.Gender.Confidence, 0.5)
			require.Nil(t, f.Template, "only the units asked for run")
		})
	}
}

func TestHeadPose(t *testing.T) {
	frontal := []string{"obama_1.jpg", "obama_small.jpg", "biden_2.jpg", "astronaut_collins.png"}
	for _, file := range frontal {
		f := largestFace(t, process(t, photo(t, file), UnitFaceFitter))
		require.NotNil(t, f.Pose, file)
		require.InDelta(t, 0, f.Pose.Yaw, 10, "%s yaw", file)
		require.InDelta(t, 0, f.Pose.Pitch, 10, "%s pitch", file)
		require.InDelta(t, 0, f.Pose.Roll, 10, "%s roll", file)
	}
	// Turned faces: a mirrored copy turns the other way.
	for _, file := range []string{"obama_2.jpg", "liveness_real_T1.jpg", "biden_1.jpg"} {
		img := photo(t, file)
		a := largestFace(t, process(t, img, UnitFaceFitter)).Pose
		b := largestFace(t, process(t, imgproc.FlipHorizontal(img), UnitFaceFitter)).Pose
		require.Greater(t, math.Abs(a.Yaw), 20.0, "%s is turned", file)
		require.Greater(t, math.Abs(b.Yaw), 20.0, "%s mirrored is turned", file)
		require.Equal(t, math.Signbit(a.Yaw), !math.Signbit(b.Yaw), "%s: mirroring flips the yaw sign (%.1f vs %.1f)", file, a.Yaw, b.Yaw)
		require.InDelta(t, math.Abs(a.Yaw), math.Abs(b.Yaw), 8, file)
		require.InDelta(t, a.Pitch, b.Pitch, 8, "%s: mirroring keeps pitch", file)
	}
	// The sign itself: obama_2's nose is left of his eye midpoint in the
	// image, so he faces the image's left: negative yaw.
	f := largestFace(t, process(t, photo(t, "obama_2.jpg"), UnitFaceFitter))
	eyes := mean([]geom.Point{f.Landmarks68[36], f.Landmarks68[45]})
	require.Less(t, f.Landmarks68[30].X, eyes.X)
	require.Less(t, f.Pose.Yaw, 0.0)
}

func TestFitterPoints(t *testing.T) {
	f := largestFace(t, process(t, photo(t, "obama_1.jpg"), UnitFaceFitter))
	require.Len(t, f.Landmarks68, 68)
	require.Len(t, f.Fitter, 21)
	require.Equal(t, FitterPointNames()[0], f.Fitter[0].Name)
	byName := map[string]geom.Point{}
	for _, p := range f.Fitter {
		byName[p.Name] = p.Point
		require.True(t, p.X > f.Box.X1-0.2*f.Box.W() && p.X < f.Box.X2+0.2*f.Box.W(), p.Name)
	}
	// Anatomy: the subject's right eye is on the image's left; eyes above
	// the nose tip, above the mouth, above the chin.
	require.Less(t, byName["right_eye_center"].X, byName["left_eye_center"].X)
	require.Less(t, byName["right_eye_center"].Y, byName["nose_tip"].Y)
	require.Less(t, byName["nose_tip"].Y, byName["mouth_center"].Y)
	require.Less(t, byName["mouth_center"].Y, byName["chin"].Y)
	// The fitter's eye centres land near the detector's eye points.
	for i, name := range []string{"right_eye_center", "left_eye_center"} {
		d := math.Hypot(byName[name].X-f.Keypoints[i].X, byName[name].Y-f.Keypoints[i].Y)
		require.Less(t, d, 0.08*f.Box.W(), name)
	}
}

func TestEmotion(t *testing.T) {
	for _, file := range []string{"obama_1.jpg", "astronaut_collins.png"} {
		f := largestFace(t, process(t, photo(t, file), UnitEmotion))
		require.Len(t, f.Emotions, 7)
		require.Equal(t, EmotionHappy, f.Emotions[0].Class, "%s smiles", file)
		var sum float64
		for i, e := range f.Emotions {
			sum += e.Confidence
			if i > 0 {
				require.LessOrEqual(t, e.Confidence, f.Emotions[i-1].Confidence)
			}
		}
		require.InDelta(t, 1, sum, 1e-3)
	}
}

func TestLiveness(t *testing.T) {
	cases := []struct {
		file string
		real bool
	}{
		{"liveness_real_T1.jpg", true},
		{"liveness_fake_F1.jpg", false},
		{"liveness_fake_F2.jpg", false},
		{"obama_1.jpg", true},
		{"two_people.jpg", true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			// No faces given: the detector runs first (face-detector-liveness).
			s := process(t, photo(t, c.file), UnitLiveness)
			for _, f := range faces(s) {
				require.NotNil(t, f.Liveness)
				require.Equal(t, c.real, f.Liveness.Real, "p(real) %.3f", f.Liveness.RealScore)
				require.GreaterOrEqual(t, f.Liveness.Confidence, 0.8)
			}
			require.NotEmpty(t, faces(s))
		})
	}
}

func TestMaskOnDrawnMasks(t *testing.T) {
	// No photo with a mask has a clear license, so masks are drawn: the
	// lower face (jaw points 1-15 and the nose bridge) painted light blue.
	for _, file := range []string{"obama_1.jpg", "biden_2.jpg", "astronaut_collins.png", "two_people.jpg"} {
		img := photo(t, file)
		for _, f := range faces(process(t, img, UnitFaceFitter, UnitMask)) {
			require.NotNil(t, f.Mask)
			require.False(t, f.Mask.Masked, "%s %s bare face", file, f.ID)
			poly := append(append([]geom.Point{}, f.Landmarks68[1:16]...), f.Landmarks68[28])
			masked := paintPolygon(img, poly, [3]uint8{170, 200, 230})
			given := &Object{Class: ClassFace, Box: f.Box, Keypoints: f.Keypoints}
			s, err := engine.Process(context.Background(), Request{Image: masked, Units: NewUnits(UnitMask), Objects: []*Object{given}})
			require.NoError(t, err)
			require.True(t, s.Objects[0].Mask.Masked, "%s %s drawn mask", file, f.ID)
			require.Greater(t, s.Objects[0].Mask.Confidence, 0.9)
		}
	}
}

func TestQualityDropsForBlurAndDarkness(t *testing.T) {
	for _, file := range []string{"obama_1.jpg", "biden_2.jpg", "astronaut_collins.png"} {
		img := photo(t, file)
		base := largestFace(t, process(t, img, UnitQuality))
		require.NotNil(t, base.Quality)
		q := base.Quality
		require.Greater(t, q.Total, 0.7, "%s is a good portrait", file)
		given := func() []*Object {
			return []*Object{{Class: ClassFace, Box: base.Box, Keypoints: base.Keypoints, Confidence: base.Confidence}}
		}
		blurred := boxBlur(img, max(img.W, img.H)/80)
		sb, err := engine.Process(context.Background(), Request{Image: blurred, Units: NewUnits(UnitQuality), Objects: given()})
		require.NoError(t, err)
		dark := darken(img, 0.15)
		sd, err := engine.Process(context.Background(), Request{Image: dark, Units: NewUnits(UnitQuality), Objects: given()})
		require.NoError(t, err)
		qb, qd := sb.Objects[0].Quality, sd.Objects[0].Quality
		t.Logf("%s total %.3f, blurred %.3f (sharpness %.3f -> %.3f), dark %.3f (exposure %.3f -> %.3f)",
			file, q.Total, qb.Total, q.Sharpness, qb.Sharpness, qd.Total, q.Exposure, qd.Exposure)
		require.Less(t, qb.Sharpness, q.Sharpness-0.2, file)
		require.Less(t, qb.Total, q.Total-0.1, file)
		require.Less(t, qd.Exposure, q.Exposure-0.2, file)
		require.Less(t, qd.Total, q.Total-0.1, file)
	}
	// A small face scores lower on size than a large one.
	small := largestFace(t, process(t, photo(t, "cameraman_person.png"), UnitQuality))
	require.Less(t, small.Quality.Size, 1.0)
}

// boxBlur averages each pixel with its (2r+1)² neighbourhood.
func boxBlur(img *imgproc.RGB, r int) *imgproc.RGB {
	out := imgproc.NewRGB(img.W, img.H)
	tmp := imgproc.NewRGB(img.W, img.H)
	pass := func(src, dst *imgproc.RGB, dx, dy int) {
		for y := 0; y < src.H; y++ {
			for x := 0; x < src.W; x++ {
				var s [3]int
				n := 0
				for k := -r; k <= r; k++ {
					xx, yy := x+k*dx, y+k*dy
					if xx < 0 || yy < 0 || xx >= src.W || yy >= src.H {
						continue
					}
					i := (yy*src.W + xx) * 3
					s[0] += int(src.Pix[i])
					s[1] += int(src.Pix[i+1])
					s[2] += int(src.Pix[i+2])
					n++
				}
				o := (y*src.W + x) * 3
				dst.Pix[o], dst.Pix[o+1], dst.Pix[o+2] = uint8(s[0]/n), uint8(s[1]/n), uint8(s[2]/n)
			}
		}
	}
	pass(img, tmp, 1, 0)
	pass(tmp, out, 0, 1)
	return out
}

func darken(img *imgproc.RGB, k float64) *imgproc.RGB {
	out := &imgproc.RGB{W: img.W, H: img.H, Pix: make([]uint8, len(img.Pix))}
	for i, v := range img.Pix {
		out.Pix[i] = uint8(float64(v) * k)
	}
	return out
}
