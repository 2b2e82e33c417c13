"""The bundled minimal LLaVA-1.5 trainer; the only part of datamix that imports torch.

config.py (TrainConfig), model.py (LlavaForConditionalGeneration + projectors), template.py (render + mask),
tokenizer.py, data.py (webdataset stream), setup.py, loop.py (training, DDP), checkpoint.py, metrics.py,
predict.py and vqa_eval.py (greedy answers, VQA accuracy).
"""
