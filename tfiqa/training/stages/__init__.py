"""Training stages, one `StageSpec` each, registered by name in `STAGES`.

Importing the package registers the built-in stages (rank, meta, finetune);
`tfiqa.training.experiment` runs them in `stages.order` order through
`tfiqa.training.stage_runner.run_stage`.
"""

from tfiqa.training.stages import finetune, meta, rank  # noqa: F401  (register)
from tfiqa.training.stages.context import StageContext
from tfiqa.training.stages.spec import (
    STAGES,
    Phase,
    StageRun,
    StageSpec,
    register_stage,
    shared_data,
    stage_seed,
)

__all__ = [
    "STAGES",
    "Phase",
    "StageContext",
    "StageRun",
    "StageSpec",
    "register_stage",
    "shared_data",
    "stage_seed",
]
