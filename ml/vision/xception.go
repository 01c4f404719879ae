package vision

import (
	"context"
	"math"
	"sort"

	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// The emotion and gender models are mini-Xception networks converted from
// oarriaga/face_classification (models/SOURCES.md §7). Both take the face
// box enlarged 1.3x, stretched to 64x64, greyscale, (x/255 − 0.5)·2, and
// return softmax probabilities.
const xceptionSize = 64

func xceptionInput(img *imgproc.RGB, face *Object) ort.Tensor {
	crop := face.Box.Scale(1.3, 1.3)
	data := make([]float32, xceptionSize*xceptionSize)
	img.SampleInto(data, xceptionSize, xceptionSize,
		imgproc.ResizeMap(crop.X1, crop.Y1, crop.W(), crop.H(), xceptionSize, xceptionSize),
		imgproc.GrayPlane, imgproc.Uniform(127.5, 1/127.5), imgproc.Border{Replicate: true})
	return ort.Tensor{Shape: []int64{1, 1, xceptionSize, xceptionSize}, Data: data}
}

// genderEstimator: output gender_probs [woman, man].
type genderEstimator struct{ sess *ort.Session }

func newGenderEstimator(rt *ort.Runtime, src models.Source) (*genderEstimator, error) {
	b, err := src.Read(models.Gender)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("mini_xception_gender", b, []string{"input"}, []string{"gender_probs"})
	if err != nil {
		return nil, err
	}
	return &genderEstimator{sess: s}, nil
}

func (g *genderEstimator) session() *ort.Session { return g.sess }

func (g *genderEstimator) estimate(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	for _, f := range faces {
		out, err := g.sess.Run(ctx, xceptionInput(img, f))
		if err != nil {
			return err
		}
		woman, man := float64(out[0].Data[0]), float64(out[0].Data[1])
		if man >= woman {
			f.Gender = &Gender{Value: GenderMale, Confidence: man / (man + woman)}
		} else {
			f.Gender = &Gender{Value: GenderFemale, Confidence: woman / (man + woman)}
		}
	}
	return nil
}

// emotionEstimator: output emotion_probs over the seven FER2013 classes in
// EmotionAngry..EmotionNeutral order.
type emotionEstimator struct{ sess *ort.Session }

func newEmotionEstimator(rt *ort.Runtime, src models.Source) (*emotionEstimator, error) {
	b, err := src.Read(models.Emotion)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("mini_xception_emotion", b, []string{"input"}, []string{"emotion_probs"})
	if err != nil {
		return nil, err
	}
	return &emotionEstimator{sess: s}, nil
}

func (e *emotionEstimator) session() *ort.Session { return e.sess }

func (e *emotionEstimator) estimate(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	for _, f := range faces {
		out, err := e.sess.Run(ctx, xceptionInput(img, f))
		if err != nil {
			return err
		}
		em := make([]Emotion, len(out[0].Data))
		for i, p := range out[0].Data {
			em[i] = Emotion{Class: EmotionClass(i + 1), Confidence: float64(p)}
		}
		sort.SliceStable(em, func(a, b int) bool { return em[a].Confidence > em[b].Confidence })
		f.Emotions = em
	}
	return nil
}

func softmax(v []float32) []float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = math.Max(mx, float64(x))
	}
	out := make([]float64, len(v))
	var s float64
	for i, x := range v {
		out[i] = math.Exp(float64(x) - mx)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}
