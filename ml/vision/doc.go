// Package vision is the Image API's domain: it runs the face and body units
// on one decoded image and returns a Sample, the image plus its objects.
//
// Each unit reads the objects it is given and adds its attributes to them, so
// units chain: a client that already holds face boxes can ask only for age.
// When face units are requested and no face objects are given, the face
// detector runs first (the "face-detector-…" variants of the units).
//
// Nothing here knows about gRPC; services/imageapi converts to and from the
// wire types.
package vision
