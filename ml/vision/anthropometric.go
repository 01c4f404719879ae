package vision

import "github.com/vigilhq/vigil/ml/geom"

// The 21 anthropometric points that commercial face fitters return (the
// AFLW-21 set), made from iBUG-68 indices. "Right"/"left" are the subject's:
// the subject's right eye is on the image's left. A point made from several
// indices is their mean.
var anthropometricPoints = []struct {
	name string
	idx  []int
}{
	{"right_eyebrow_outer", []int{17}},
	{"right_eyebrow_center", []int{19}},
	{"right_eyebrow_inner", []int{21}},
	{"left_eyebrow_inner", []int{22}},
	{"left_eyebrow_center", []int{24}},
	{"left_eyebrow_outer", []int{26}},
	{"right_eye_outer", []int{36}},
	{"right_eye_center", []int{36, 37, 38, 39, 40, 41}},
	{"right_eye_inner", []int{39}},
	{"left_eye_inner", []int{42}},
	{"left_eye_center", []int{42, 43, 44, 45, 46, 47}},
	{"left_eye_outer", []int{45}},
	{"right_ear_lobe", []int{2}},
	{"nose_right", []int{31}},
	{"nose_tip", []int{30}},
	{"nose_left", []int{35}},
	{"left_ear_lobe", []int{14}},
	{"mouth_right", []int{48}},
	{"mouth_center", []int{62, 66}},
	{"mouth_left", []int{54}},
	{"chin", []int{8}},
}

// FitterPointNames lists the names of the 21 points in output order.
func FitterPointNames() []string {
	out := make([]string, len(anthropometricPoints))
	for i, p := range anthropometricPoints {
		out[i] = p.name
	}
	return out
}

func anthropometric(p68 []geom.Point) []NamedPoint {
	out := make([]NamedPoint, len(anthropometricPoints))
	for i, a := range anthropometricPoints {
		out[i] = NamedPoint{Name: a.name, Point: mean(pick(p68, a.idx))}
	}
	return out
}

// meanFaceIndex and meanFace3D are the landmarks used for head pose and
// their position on a mean frontal face, in millimetres, with the nose tip at
// the origin, X to the image's right, Y down and Z away from the camera.
//
// X and Y follow where the fitter puts these points on frontal faces, in
// units of the outer-eye-corner distance (90 mm on an adult): eye line 0.42
// above the nose tip, mouth corners 0.28 and chin 0.97 below it, inner eye
// corners 0.44 and mouth corners 0.71 apart. (Using textbook proportions
// instead puts the fitter's chin, which sits lower than the bony menton,
// too high and biases pitch by about −10° on frontal faces.) Depths Z are
// rounded anthropometry: outer eye corners 27 mm behind the nose tip, inner
// 18, mouth corners 25, chin 12, nasion 15.
var meanFaceIndex = []int{30, 8, 36, 45, 39, 42, 48, 54, 27}

var meanFace3D = []geom.Point3{
	{X: 0, Y: 0, Z: 0},      // 30 nose tip
	{X: 0, Y: 87, Z: 12},    // 8 chin
	{X: -45, Y: -38, Z: 27}, // 36 right eye outer corner
	{X: 45, Y: -38, Z: 27},  // 45 left eye outer corner
	{X: -20, Y: -38, Z: 18}, // 39 right eye inner corner
	{X: 20, Y: -38, Z: 18},  // 42 left eye inner corner
	{X: -32, Y: 25, Z: 25},  // 48 right mouth corner
	{X: 32, Y: 25, Z: 25},   // 54 left mouth corner
	{X: 0, Y: -38, Z: 15},   // 27 nasion (top of the nose bridge)
}
