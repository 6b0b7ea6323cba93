"""Training stages, registered by name in `STAGES` (rank, meta, finetune).

Each module registers its `Stage` on import; `tfiqa.training.experiment`
runs them in `trainer.stages` order.
"""

from tfiqa.training.stages import finetune, meta, rank  # noqa: F401  (register)
from tfiqa.training.stages.base import STAGES, Stage, StageContext, register_stage

__all__ = ["STAGES", "Stage", "StageContext", "register_stage"]
