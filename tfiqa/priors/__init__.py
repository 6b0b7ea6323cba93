"""Quality priors trained on cached, frozen-backbone features of distorted crops.

`DistortedFeatureCache` pools a frozen backbone's features of pristine crops
at every distortion type and level once; `tfiqa.priors.heads` trains small
heads on those rows (MAML, multitask regression, ranking), and
`tfiqa.priors.gate` decides whether a prior's adaptation beats its 0-shot
scores before it is used.
"""

from tfiqa.priors.feature_cache import DistortedFeatureCache, lite0_extractor, row_index

__all__ = ["DistortedFeatureCache", "lite0_extractor", "row_index"]
