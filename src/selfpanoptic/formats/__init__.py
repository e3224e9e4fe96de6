"""The official Cityscapes file formats this package writes and reads.

* :mod:`.cityscapes_ids`: the id encodings (void, stuff labelIds, ``labelId * 1000 + k`` thing
  instances), image-id checks and the panoptic ``categories`` list;
* :mod:`.panoptic_png`: the RGB panoptic PNG (id = R + 256 G + 256^2 B), its reader, and the
  panoptic prediction PNG + COCO-panoptic JSON of ``evalPanopticSemanticLabeling``;
* :mod:`.instance_files`: the txt + mask PNG predictions of ``evalInstanceLevelSemanticLabeling``;
* :mod:`.semantic_png`: the labelIds PNG predictions of ``evalPixelLevelSemanticLabeling`` (and
  the test server), with a colour PNG beside for looking.

Nothing is re-exported here: import from the submodules.
"""
