// Package imageapi is the Image API component: vigil.imageapi.v1's
// ImageApiService on the real models of ml/vision.
//
// Routes (through the gateway): POST /v1/image:process with JSON (base64
// images) or multipart/form-data (MultipartHandler), and one POST route per
// unit (/v1/image:detectFaces, :fitFaces, :extractTemplates, :estimateAge,
// :estimateGender, :estimateEmotion, :estimateMask, :estimateLiveness,
// :assessQuality, :detectBodies).
//
// Errors: bad images and bad requests are INVALID_ARGUMENT naming the field
// (errdetails.BadRequest); units the license does not enable are
// PERMISSION_DENIED through the UnitChecker seam; no face found is an empty
// object list.
package imageapi
