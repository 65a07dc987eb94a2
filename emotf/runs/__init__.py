"""Runs: the folder a training run owns (`folder.Run`, `folder.CrossValidation`,
`folder.EvaluationDir`), the model archives in it (`model_io`) and the data a run reads (`data`).
Below training, evaluation and serving, which all read runs."""
