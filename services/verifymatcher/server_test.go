package verifymatcher

import (
	"context"
	"math"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	verifymatcherv1 "github.com/vigilhq/vigil/gen/go/vigil/verifymatcher/v1"
)

func serve(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	register(gs)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///"+l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startVerifyMatcher serves the Image API (real models) and the verify-matcher on
// loopback, the verify-matcher calling the Image API through its gRPC client.
func startVerifyMatcher(t *testing.T) verifymatcherv1.VerifyMatcherServiceClient {
	e := testEngine(t)
	imgConn := serve(t, func(s *grpc.Server) { imageapiv1.RegisterImageApiServiceServer(s, &imageAPI{engine: e}) })
	srv := NewServer(NewVerifier(), NewExtractor(imageapiv1.NewImageApiServiceClient(imgConn)))
	conn := serve(t, func(s *grpc.Server) { verifymatcherv1.RegisterVerifyMatcherServiceServer(s, srv) })
	return verifymatcherv1.NewVerifyMatcherServiceClient(conn)
}

func protoT(t Template) *commonv1.Template {
	return &commonv1.Template{Model: t.ModelID, Vector: t.Vector}
}

func fmrRule(r float64) *verifymatcherv1.DecisionRule {
	return &verifymatcherv1.DecisionRule{Rule: &verifymatcherv1.DecisionRule_FalseMatchRate{FalseMatchRate: r}}
}

func scoreRule(s float32) *verifymatcherv1.DecisionRule {
	return &verifymatcherv1.DecisionRule{Rule: &verifymatcherv1.DecisionRule_MinScore{MinScore: s}}
}

func TestVerifyTemplates(t *testing.T) {
	c := startVerifyMatcher(t)
	e := testEngine(t)
	ctx := context.Background()
	obama1 := faceTemplates(t, e, photoBytes(t, "obama_1.jpg"))[0]
	obama2 := faceTemplates(t, e, photoBytes(t, "obama_2.jpg"))[0]
	biden2 := faceTemplates(t, e, photoBytes(t, "biden_2.jpg"))[0]
	table := measuredTables()[obama1.ModelID]
	require.NotEmpty(t, table.Rows, "the shipped model has a table")

	for _, tc := range []struct {
		name       string
		a, b       Template
		rule       *verifymatcherv1.DecisionRule
		same       bool
		threshold  float32
		fmr        float64
		extrapolat bool
	}{
		{"same person, default rule", obama1, obama2, nil, true, table.Rows[3].Score, 1e-4, true},
		{"different people, default rule", obama1, biden2, nil, false, table.Rows[3].Score, 1e-4, true},
		{"same person at 1e-6", obama1, obama2, fmrRule(1e-6), true, table.Rows[5].Score, 1e-6, true},
		{"raw score above the pair", obama1, obama2, scoreRule(0.99), false, 0.99, table.Rows[5].FMR, true},
		{"raw score", obama1, biden2, scoreRule(-0.5), true, -0.5, table.Rows[0].FMR, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Verify(ctx, &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(tc.a), Candidate: protoT(tc.b), Rule: tc.rule})
			require.NoError(t, err)
			want := float64(dot(tc.a.Vector, tc.b.Vector))
			require.InDelta(t, want, resp.GetVerification().GetScore(), 1e-5)
			require.Equal(t, tc.same, resp.GetVerification().GetSamePerson())
			require.InDelta(t, tc.threshold, resp.GetThreshold().GetMinScore(), 1e-6)
			require.InDelta(t, tc.fmr, resp.GetThreshold().GetFalseMatchRate(), tc.fmr*1e-6)
			require.Equal(t, tc.extrapolat, resp.GetThreshold().GetExtrapolated())
		})
	}

	nan := append([]float32{float32(math.NaN())}, obama1.Vector[1:]...)
	other := Template{ModelID: "arcface-512d@1", Vector: obama1.Vector}
	for _, tc := range []struct {
		name string
		req  *verifymatcherv1.VerifyRequest
		code codes.Code
	}{
		{"models differ", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: protoT(other)}, codes.FailedPrecondition},
		{"NaN", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: &commonv1.Template{Model: obama1.ModelID, Vector: nan}}, codes.InvalidArgument},
		{"empty vector", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: &commonv1.Template{Model: obama1.ModelID}}, codes.InvalidArgument},
		{"wrong dimension", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: &commonv1.Template{Model: obama1.ModelID, Vector: obama2.Vector[:64]}}, codes.InvalidArgument},
		{"zero vector", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: &commonv1.Template{Model: obama1.ModelID, Vector: make([]float32, 128)}}, codes.InvalidArgument},
		{"rate too high", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: protoT(obama2), Rule: fmrRule(0.01)}, codes.InvalidArgument},
		{"rate too low", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: protoT(obama2), Rule: fmrRule(1e-9)}, codes.InvalidArgument},
		{"score out of range", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidate: protoT(obama2), Rule: scoreRule(1.5)}, codes.InvalidArgument},
		{"rate for a model without table", &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(other), Candidate: protoT(other), Rule: fmrRule(1e-4)}, codes.FailedPrecondition},
		{"no workspace", &verifymatcherv1.VerifyRequest{Probe: protoT(obama1), Candidate: protoT(obama2)}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Verify(ctx, tc.req)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
		})
	}
	t.Run("raw score works for a model without table", func(t *testing.T) {
		resp, err := c.Verify(ctx, &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(other), Candidate: protoT(other), Rule: scoreRule(0.5)})
		require.NoError(t, err)
		require.True(t, resp.GetVerification().GetSamePerson())
		require.Zero(t, resp.GetThreshold().GetFalseMatchRate())
	})

	t.Run("one to many and many to many agree with single verifications", func(t *testing.T) {
		cands := []Template{obama2, biden2, obama1}
		om, err := c.VerifyOneToMany(ctx, &verifymatcherv1.VerifyOneToManyRequest{WorkspaceId: "ws", Probe: protoT(obama1),
			Candidates: []*commonv1.Template{protoT(obama2), protoT(biden2), protoT(obama1)}, Rule: fmrRule(1e-5)})
		require.NoError(t, err)
		require.Len(t, om.GetVerifications(), 3)
		probes := []Template{obama1, biden2}
		mm, err := c.VerifyManyToMany(ctx, &verifymatcherv1.VerifyManyToManyRequest{WorkspaceId: "ws",
			Probes: []*commonv1.Template{protoT(obama1), protoT(biden2)}, Candidates: []*commonv1.Template{protoT(obama2), protoT(biden2), protoT(obama1)}, Rule: fmrRule(1e-5)})
		require.NoError(t, err)
		require.Len(t, mm.GetScores(), 6)
		for i, p := range probes {
			for j, cand := range cands {
				one, err := c.Verify(ctx, &verifymatcherv1.VerifyRequest{WorkspaceId: "ws", Probe: protoT(p), Candidate: protoT(cand), Rule: fmrRule(1e-5)})
				require.NoError(t, err)
				require.Equal(t, one.GetVerification().GetScore(), mm.GetScores()[i*3+j])
				require.Equal(t, one.GetVerification().GetSamePerson(), mm.GetSamePerson()[i*3+j])
				if i == 0 {
					require.Equal(t, one.GetVerification().GetScore(), om.GetVerifications()[j].GetScore())
				}
			}
		}
		require.Equal(t, []bool{true, false, true, false, true, false}, mm.GetSamePerson())
		_, err = c.VerifyOneToMany(ctx, &verifymatcherv1.VerifyOneToManyRequest{WorkspaceId: "ws", Probe: protoT(obama1), Candidates: []*commonv1.Template{protoT(other)}})
		require.Equal(t, codes.FailedPrecondition, status.Code(err))
		_, err = c.VerifyManyToMany(ctx, &verifymatcherv1.VerifyManyToManyRequest{WorkspaceId: "ws", Candidates: []*commonv1.Template{protoT(obama1)}})
		require.Equal(t, codes.InvalidArgument, status.Code(err))
	})
}

func TestVerifyImages(t *testing.T) {
	c := startVerifyMatcher(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		a, b  string
		same  bool
		code  codes.Code
		bytes []byte
	}{
		{name: "same person", a: "obama_1.jpg", b: "obama_3.jpg", same: true},
		{name: "same person, small face", a: "obama_small.jpg", b: "obama_2.jpg", same: true},
		{name: "different people", a: "obama_1.jpg", b: "biden_2.jpg", same: false},
		{name: "largest face of a group photo", a: "two_people.jpg", b: "biden_2.jpg", same: true},
		{name: "no face", a: "obama_1.jpg", b: "noface_coffee.png", code: codes.FailedPrecondition},
		{name: "not an image", a: "obama_1.jpg", bytes: []byte("not an image"), code: codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.bytes
			if b == nil {
				b = photoBytes(t, tc.b)
			}
			resp, err := c.VerifyImages(ctx, &verifymatcherv1.VerifyImagesRequest{WorkspaceId: "ws", ProbeImage: photoBytes(t, tc.a), CandidateImage: b})
			if tc.code != codes.OK {
				require.Equal(t, tc.code, status.Code(err), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.same, resp.GetVerification().GetSamePerson(), "score %v", resp.GetVerification().GetScore())
			require.Len(t, resp.GetProbeTemplate().GetVector(), 128)
			require.Equal(t, resp.GetProbeTemplate().GetModel(), resp.GetCandidateTemplate().GetModel())
		})
	}
}

func TestFMRTableInterpolation(t *testing.T) {
	for model, table := range measuredTables() {
		prev := float32(-2)
		for _, rate := range []float64{1e-1, 5e-2, 1e-2, 3e-3, 1e-3, 1e-4, 3e-5, 1e-5, 1e-6} {
			s, _ := table.scoreAt(rate)
			require.GreaterOrEqual(t, s, prev, "%s: thresholds rise as the rate falls", model)
			prev = s
			back, _ := table.rateAt(s)
			require.InEpsilon(t, rate, back, 0.05, "%s: rateAt inverts scoreAt at %g", model, rate)
		}
		_, extrapolated := table.scoreAt(1e-1)
		require.Equal(t, table.Rows[0].Extrapolated, extrapolated)
	}
}
