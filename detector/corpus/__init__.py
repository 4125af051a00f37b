"""The labelled corpus: clips of every verdict class with their truth, for training and tests.

- `footage`: real camera footage and film shipped inside installed packages;
- `layers`: what every clip gets on top of its content (camera shake, lighting drift,
  sensor noise, live-room overlays) and frame-level helpers;
- `variants`: one recipe per class variant (live, looped, prerecorded, ai_driven);
- `plan`: which clips a corpus has, deterministically from a seed;
- `build`: renders the plan into H.264 clips and a manifest, resumably.

Nothing heavy is imported here.
"""
