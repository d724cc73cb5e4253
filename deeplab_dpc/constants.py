"""Numbers the original DeepLab release fixes, each decided in exactly one place.

Names follow the original code (`common.py`, `core/xception.py`, `model.py`,
`core/dense_prediction_cell.py`) so a reader can find them there.
"""

# Label value ignored by the loss and the metrics (`common.py`).
IGNORE_LABEL = 255

# Mean pixel used to pad images (`input_preprocess.py`, `feature_extractor.py`).
MEAN_PIXEL = 127.5

# Batch norm in the backbones (tf-slim's default epsilon; xception arg scope decay).
BACKBONE_BATCH_NORM_EPSILON = 1e-3
BACKBONE_BATCH_NORM_DECAY = 0.9997
# MobileNet-v2's `training_scope` keeps tf-slim's decay default.
MOBILENET_BATCH_NORM_DECAY = 0.997

# Batch norm in ASPP, image pooling, the dense prediction cell and the decoder.
HEAD_BATCH_NORM_EPSILON = 1e-5
HEAD_BATCH_NORM_DECAY = 0.9997

# Channels of every ASPP / DPC branch and of the decoder convs.
ASPP_CONVS_FILTERS = 256
DECODER_FILTERS = 256
# Channels of the decoder's low-level feature projection.
DECODER_PROJECTION_FILTERS = 48

# Dropout keep probability before/after the concat projection (ASPP and DPC).
DROPOUT_KEEP_PROB = 0.9

# Weight decay of the training recipe (`train.py` flag default).
WEIGHT_DECAY = 4e-5

# Scope names of the original graph.
META_ARCHITECTURE_SCOPE = 'meta_architecture'
CONCAT_PROJECTION_SCOPE = 'concat_projection'
IMAGE_POOLING_SCOPE = 'image_pooling'
ASPP_SCOPE = 'aspp'
DECODER_SCOPE = 'decoder'
LOGITS_SCOPE_NAME = 'logits'
OUTPUT_TYPE = 'semantic'
