"""Text of the web page in English and Simplified Chinese, and choosing between them."""

from __future__ import annotations

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "zh-CN")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "eyescreen: fundus photo screening",
        "heading": "Fundus photo screening",
        "intro": "Sorts a colour retinal fundus photograph into normal, cataract, glaucoma or retina disease, and shows how sure the model is.",
        "warning": "Research software only. This is not a medical device and not a diagnosis. Do not use it to make decisions about a patient's care.",
        "upload_legend": "Upload a photo",
        "upload_hint": "JPEG, PNG, TIFF, BMP, WebP, GIF or HEIC.",
        "upload_button": "Classify photo",
        "url_legend": "Or classify an image URL",
        "url_placeholder": "https://example.org/fundus.jpg",
        "url_button": "Classify URL",
        "working": "Classifying…",
        "result_heading": "Result",
        "predicted": "Predicted class",
        "probability": "Probability",
        "class": "Class",
        "timing": "Model {name} {version}, {total} ms",
        "status_uncertain": "The model is not sure about this photo: its top probability is below the model's referral threshold. Have a specialist read it.",
        "class_normal": "Normal",
        "class_cataract": "Cataract",
        "class_glaucoma": "Glaucoma",
        "class_retina_disease": "Retina disease",
        "language_switch": "中文",
        "error_heading": "The photo could not be classified",
        "error_no_file": "Choose a photo first.",
        "error_no_url": "Enter an image URL first.",
        "error_network": "The server could not be reached. Check your connection and try again.",
        "error_corrupt_image": "The file is damaged or incomplete. Upload the complete file again.",
        "error_unsupported_image": "This file is not a supported image. Upload a JPEG, PNG, TIFF, BMP, WebP, GIF or HEIC photo.",
        "error_image_too_large": "The image has too many pixels. Downscale it and try again.",
        "error_request_too_large": "The file is too large. Upload a smaller file.",
        "error_url_not_allowed": "This URL cannot be fetched. Use a public http:// or https:// image URL, or upload the file.",
        "error_url_fetch_failed": "The URL did not return an image. Check that it opens the image itself.",
        "error_url_timeout": "The URL took too long to answer. Try again or upload the file.",
        "error_remote_image_too_large": "The image at the URL is too large. Use a smaller image.",
        "error_server_busy": "The server is busy with other photos. Wait a few seconds and try again.",
        "error_request_timeout": "The upload stalled. Check your connection and try again.",
        "footer": "eyescreen is open-source research software (Apache-2.0).",
    },
    "zh-CN": {
        "title": "eyescreen：眼底照片筛查",
        "heading": "眼底照片筛查",
        "intro": "将彩色视网膜眼底照片分为正常、白内障、青光眼或视网膜疾病，并显示模型的把握程度。",
        "warning": "仅供研究使用。本软件不是医疗器械，结果不构成诊断。请勿据此做出任何诊疗决定。",
        "upload_legend": "上传照片",
        "upload_hint": "支持 JPEG、PNG、TIFF、BMP、WebP、GIF 或 HEIC。",
        "upload_button": "分析照片",
        "url_legend": "或分析图片网址",
        "url_placeholder": "https://example.org/fundus.jpg",
        "url_button": "分析网址",
        "working": "正在分析…",
        "result_heading": "结果",
        "predicted": "预测类别",
        "probability": "概率",
        "class": "类别",
        "timing": "模型 {name} {version}，用时 {total} 毫秒",
        "status_uncertain": "模型对这张照片没有把握：最高概率低于模型的转诊阈值。请由专科医生阅片。",
        "class_normal": "正常",
        "class_cataract": "白内障",
        "class_glaucoma": "青光眼",
        "class_retina_disease": "视网膜疾病",
        "language_switch": "English",
        "error_heading": "无法分析这张照片",
        "error_no_file": "请先选择一张照片。",
        "error_no_url": "请先输入图片网址。",
        "error_network": "无法连接服务器。请检查网络后重试。",
        "error_corrupt_image": "文件已损坏或不完整。请重新上传完整的文件。",
        "error_unsupported_image": "该文件不是支持的图片格式。请上传 JPEG、PNG、TIFF、BMP、WebP、GIF 或 HEIC 照片。",
        "error_image_too_large": "图片像素过多。请缩小后重试。",
        "error_request_too_large": "文件过大。请上传较小的文件。",
        "error_url_not_allowed": "无法获取该网址。请使用公开的 http:// 或 https:// 图片网址，或直接上传文件。",
        "error_url_fetch_failed": "该网址没有返回图片。请确认网址直接指向图片。",
        "error_url_timeout": "该网址响应超时。请重试或直接上传文件。",
        "error_remote_image_too_large": "网址上的图片过大。请使用较小的图片。",
        "error_server_busy": "服务器正忙于处理其他照片。请稍等几秒后重试。",
        "error_request_timeout": "上传中断。请检查网络后重试。",
        "footer": "eyescreen 是开源研究软件（Apache-2.0 许可）。",
    },
}


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """Pick the page language: ?lang= first, then the lang cookie, then Accept-Language."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    return language_from_header(accept_language or "")


def language_from_header(header: str) -> str:
    """Return the best supported language for an Accept-Language header, honouring q-values."""
    ranked = []
    for position, item in enumerate(header.split(",")):
        tag, _, parameters = item.strip().partition(";")
        quality = 1.0
        if parameters.strip().startswith("q="):
            try:
                quality = float(parameters.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality <= 0:
            # q=0 marks a language as not acceptable (RFC 9110, section 12.4.2).
            continue
        ranked.append((-quality, position, tag.strip().lower()))

    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE
