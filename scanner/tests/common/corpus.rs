//! A generated corpus of true secrets and decoys, one file per case. Every key is
//! random and assembled from pieces at run time, so this source holds no key a
//! scanner would (rightly) report.
#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use rand::Rng;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// One corpus file: its path, its content, and what a good scanner reports there
/// (`(rule id, value)`; empty for a decoy).
pub struct Case {
    pub path: String,
    pub content: String,
    pub expect: Vec<(&'static str, String)>,
}

impl Case {
    pub fn is_decoy(&self) -> bool {
        self.expect.is_empty()
    }
}

/// Random string over `alphabet`, guaranteed to hold an upper, lower and digit
/// when the alphabet has them (real generated keys practically always do).
pub fn rand_str(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    loop {
        let s: String = (0..n)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
            .collect();
        let lo = s.bytes().any(|b| b.is_ascii_lowercase());
        let up = s.bytes().any(|b| b.is_ascii_uppercase());
        let di = s.bytes().any(|b| b.is_ascii_digit());
        let need_lo = alphabet.iter().any(|b| b.is_ascii_lowercase());
        let need_up = alphabet.iter().any(|b| b.is_ascii_uppercase());
        let need_di = alphabet.iter().any(|b| b.is_ascii_digit());
        let placeholderish = s.to_ascii_lowercase().contains("xxxx")
            || s.to_ascii_lowercase().contains("your")
            || s.to_ascii_lowercase().contains("example");
        if (lo || !need_lo) && (up || !need_up) && (di || !need_di) && !placeholderish {
            return s;
        }
    }
}

fn base62_6(mut n: u32) -> String {
    let a = &ALNUM_BASE62;
    let mut out = [b'0'; 6];
    let mut i = 6;
    while n > 0 {
        i -= 1;
        out[i] = a[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}
const ALNUM_BASE62: [u8; 62] = *b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A GitHub token of kind `p`/`o`/`u`/`s`/`r` with a valid CRC32 checksum.
pub fn github_token(kind: char) -> String {
    let random = rand_str(ALNUM, 30);
    format!(
        "gh{kind}_{random}{}",
        base62_6(crc32fast::hash(random.as_bytes()))
    )
}

/// A GitHub-shaped token whose checksum is wrong.
pub fn github_token_bad_crc() -> String {
    let good = github_token('p');
    let mut bytes = good.into_bytes();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

pub fn openai_project_key() -> String {
    format!(
        "{}-{}-{}{}{}",
        "sk",
        "proj",
        rand_str(URLSAFE, 74),
        ["T3Blbk", "FJ"].concat(),
        rand_str(URLSAFE, 74)
    )
}

pub fn anthropic_key() -> String {
    format!("{}-ant-api03-{}AA", "sk", rand_str(URLSAFE, 93))
}

pub fn aws_key_id() -> String {
    format!("{}{}", ["AK", "IA"].concat(), rand_str(UPPER32, 16))
}

pub fn aws_secret() -> String {
    rand_str(B64, 40)
}

pub fn password() -> String {
    format!("{}{}!", rand_str(ALNUM, 14), rand_str(b"0123456789", 2))
}

pub fn jwt(alg: &str) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = e(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
    let payload = e(format!(r#"{{"sub":"{}","iat":1716239022}}"#, rand_str(ALNUM, 12)).as_bytes());
    format!("{header}.{payload}.{}", rand_str(URLSAFE, 43))
}

pub fn pem_body(lines: usize) -> String {
    (0..lines).map(|_| rand_str(B64, 64) + "\n").collect()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn case(path: &str, content: String, expect: Vec<(&'static str, String)>) -> Case {
    Case {
        path: path.to_owned(),
        content,
        expect,
    }
}

/// The whole corpus: true secrets for every detector, then decoys.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // --- true positives -------------------------------------------------------
    let k = openai_project_key();
    v.push(case(
        "llm/openai.env",
        format!("OPENAI_API_KEY={k}\n"),
        vec![("openai-api-key", k)],
    ));
    let k = format!("{}-svcacct-{}", "sk", rand_str(URLSAFE, 120));
    v.push(case(
        "llm/openai_client.py",
        format!("from openai import OpenAI\nclient = OpenAI(api_key=\"{k}\")\n"),
        vec![("openai-api-key", k)],
    ));
    let k = anthropic_key();
    v.push(case(
        "llm/claude.py",
        format!("import anthropic\nc = anthropic.Anthropic(api_key='{k}')\n"),
        vec![("anthropic-api-key", k)],
    ));
    let k = format!("{}{}", "AI", "za".to_owned() + &rand_str(URLSAFE, 35));
    v.push(case(
        "web/maps.js",
        format!("const mapsKey = \"{k}\";\n"),
        vec![("google-api-key", k)],
    ));
    let k = rand_str(HEX, 32);
    v.push(case(
        "llm/azure.env",
        format!("AZURE_OPENAI_ENDPOINT=https://acme.openai.azure.com/\nAZURE_OPENAI_API_KEY={k}\n"),
        vec![("azure-openai-api-key", k)],
    ));
    let k = rand_str(HEX, 32);
    v.push(case(
        "llm/azure_client.py",
        format!(
            "from openai import AzureOpenAI\nclient = AzureOpenAI(\n    api_key=\"{k}\",\n    azure_endpoint=\"https://acme.openai.azure.com\",\n)\n"
        ),
        vec![("azure-openai-api-key", k)],
    ));
    let k = format!("{}-{}", "sk", rand_str(HEX, 32));
    v.push(case(
        "llm/deepseek.py",
        format!("client = OpenAI(api_key=\"{k}\", base_url=\"https://api.deepseek.com\")\n"),
        vec![("deepseek-api-key", k)],
    ));
    let k = format!("{}-{}", "sk", rand_str(HEX, 32));
    v.push(case(
        "llm/qwen.yaml",
        format!("provider: dashscope\nqwen:\n  key: {k}\n"),
        vec![("dashscope-api-key", k)],
    ));
    let k = format!("{}-{}", "sk", rand_str(ALNUM, 48));
    v.push(case(
        "llm/kimi.py",
        format!("client = OpenAI(\n    api_key=\"{k}\",\n    base_url=\"https://api.moonshot.cn/v1\",\n)\n"),
        vec![("moonshot-api-key", k)],
    ));
    let k = format!("{}.{}", rand_str(HEX, 32), rand_str(ALNUM, 16));
    v.push(case(
        "llm/glm.py",
        format!("from zhipuai import ZhipuAI\nclient = ZhipuAI(api_key=\"{k}\")\n"),
        vec![("zhipu-api-key", k)],
    ));
    let (id, secret) = (aws_key_id(), aws_secret());
    v.push(case(
        "aws/credentials.ini",
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
        vec![("aws-access-key-id", id), ("aws-secret-access-key", secret)],
    ));
    let (id, secret) = (aws_key_id(), aws_secret());
    v.push(case(
        "aws/upload.py",
        format!(
            "s3 = boto3.client(\n    's3',\n    aws_access_key_id='{id}',\n    aws_secret_access_key='{secret}',\n)\n"
        ),
        vec![("aws-access-key-id", id), ("aws-secret-access-key", secret)],
    ));
    let k = github_token('p');
    v.push(case(
        "ci/release.sh",
        format!("#!/bin/sh\ncurl -H \"Authorization: token {k}\" https://api.github.com/user\n"),
        vec![("github-token", k)],
    ));
    let k = github_token('s');
    v.push(case(
        "ci/app.json",
        format!("{{\"installation\": \"{k}\"}}\n"),
        vec![("github-token", k)],
    ));
    let k = format!("github_pat_{}_{}", rand_str(ALNUM, 22), rand_str(ALNUM, 59));
    v.push(case(
        "ci/workflow.md",
        format!("Use this token: {k}\n"),
        vec![("github-fine-grained-pat", k)],
    ));
    let k = format!("{}-{}", "glpat", rand_str(URLSAFE, 20));
    v.push(case(
        "ci/gitlab.py",
        format!("gl = gitlab.Gitlab(url, private_token='{k}')\n"),
        vec![("gitlab-token", k)],
    ));
    let k = format!(
        "{}-{}-{}-{}",
        "xoxb",
        rand_str(b"0123456789", 11),
        rand_str(b"0123456789", 13),
        rand_str(ALNUM, 24)
    );
    v.push(case(
        "chat/bot.js",
        format!("const slack = new WebClient('{k}');\n"),
        vec![("slack-token", k)],
    ));
    let k = format!(
        "https://hooks.{}.com/services/T{}/B{}/{}",
        "slack",
        rand_str(UPPER32, 8),
        rand_str(UPPER32, 10),
        rand_str(ALNUM, 24)
    );
    v.push(case(
        "chat/notify.py",
        format!("WEBHOOK = \"{k}\"\n"),
        vec![("slack-webhook-url", k)],
    ));
    let k = format!("{}_{}_{}", "sk", "live", rand_str(ALNUM, 24));
    v.push(case(
        "pay/stripe.rb",
        format!("Stripe.api_key = '{k}'\n"),
        vec![("stripe-secret-key", k)],
    ));
    let k = format!("{}_{}", "hf", rand_str(LETTERS, 34));
    v.push(case(
        "ml/hub.py",
        format!("from huggingface_hub import login\nlogin(\"{k}\")\n"),
        vec![("huggingface-token", k)],
    ));
    let k = format!(
        "{}.{}.{}",
        "SG",
        rand_str(URLSAFE, 22),
        rand_str(URLSAFE, 43)
    );
    v.push(case(
        "mail/send.js",
        format!("sgMail.setApiKey(\"{k}\");\n"),
        vec![("sendgrid-api-key", k)],
    ));
    let k = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}-----END RSA PRIVATE KEY-----",
        pem_body(20)
    );
    v.push(case(
        "deploy/id_rsa",
        format!("{k}\n"),
        vec![("private-key", k)],
    ));
    let k = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}-----END OPENSSH PRIVATE KEY-----",
        pem_body(6)
    );
    v.push(case(
        "deploy/key.pem",
        format!("{k}\n"),
        vec![("private-key", k)],
    ));
    let k = jwt("HS256");
    v.push(case(
        "web/session.ts",
        format!("export const token = \"{k}\";\n"),
        vec![("jwt", k)],
    ));
    let k = format!("app-{}", rand_str(ALNUM, 24));
    v.push(case(
        "dify/client.py",
        format!("headers = {{\"Authorization\": \"Bearer {k}\"}}\n"),
        vec![("dify-app-api-key", k)],
    ));
    let k = format!("dataset-{}", rand_str(ALNUM, 24));
    v.push(case(
        "dify/upload.sh",
        format!("curl -H 'Authorization: Bearer {k}' https://api.dify.ai/v1/datasets\n"),
        vec![("dify-dataset-api-key", k)],
    ));
    let p = password();
    v.push(case(
        "db/settings.py",
        format!("DATABASE_URL = \"postgresql://app:{p}@db.internal:5432/app\"\n"),
        vec![("postgres-url-password", p)],
    ));
    let p = format!(
        "{}@{}#{}",
        rand_str(ALNUM, 6),
        rand_str(ALNUM, 6),
        rand_str(ALNUM, 4)
    );
    let enc = p.replace('@', "%40").replace('#', "%23");
    v.push(case(
        "db/percent.env",
        format!("DATABASE_URL=postgres://dify:{enc}@db:5432/dify\n"),
        vec![("postgres-url-password", p)],
    ));
    let p = password();
    v.push(case(
        "db/mysql.yaml",
        format!("url: mysql://root:{p}@mysql.prod:3306/shop\n"),
        vec![("mysql-url-password", p)],
    ));
    let p = password();
    v.push(case(
        "db/cache.py",
        format!("REDIS = 'redis://:{p}@cache.internal:6379/0'\n"),
        vec![("redis-url-password", p)],
    ));
    let p = password();
    v.push(case(
        "db/queue.toml",
        format!("broker = \"amqp://worker:{p}@rabbit:5672/\"\n"),
        vec![("amqp-url-password", p)],
    ));
    let s = base64::engine::general_purpose::STANDARD.encode(rand_str(ALNUM, 42));
    v.push(case(
        "app/.env",
        format!("SECRET_KEY={s}\n"),
        vec![("secret-assignment", s)],
    ));
    let p = password();
    v.push(case(
        "app/config.yaml",
        format!("database:\n  host: db\n  password: {p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = rand_str(ALNUM, 32);
    v.push(case(
        "app/config.json",
        format!("{{\n  \"api_token\": \"{p}\"\n}}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = rand_str(ALNUM, 40);
    v.push(case(
        "app/oauth.toml",
        format!("[oauth]\nclient_secret = \"{p}\"\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/db.ini",
        format!("[db]\npassword = {p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/Dockerfile",
        format!("FROM python:3.12\nENV APP_PASSWORD={p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/docker-compose.yaml",
        format!("services:\n  db:\n    environment:\n      - POSTGRES_PASSWORD={p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/compose.yml",
        format!("services:\n  api:\n    environment:\n      DB_PASSWORD: ${{DB_PASSWORD:-{p}}}\n"),
        vec![("secret-assignment", p)],
    ));
    // Kubernetes Secret: values are base64.
    let k = openai_project_key();
    let p = password();
    v.push(case(
        "k8s/secret.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: llm\ntype: Opaque\ndata:\n  OPENAI_API_KEY: {}\n  DB_PASSWORD: {}\n",
            b64(&k),
            b64(&p)
        ),
        vec![("openai-api-key", k), ("secret-assignment", p)],
    ));
    // Dify's shipped defaults.
    let default_pw = ["difyai", "123456"].concat();
    v.push(case(
        "dify/docker/.env",
        format!(
            "DB_PASSWORD={default_pw}\nREDIS_PASSWORD={default_pw}\nCELERY_BROKER_URL=redis://:{default_pw}@redis:6379/1\n"
        ),
        vec![("dify-default-credential", default_pw.clone())],
    ));
    v.push(case(
        "dify/sandbox.env",
        "CODE_EXECUTION_API_KEY=dify-sandbox\n".to_owned(),
        vec![("dify-default-credential", "dify-sandbox".to_owned())],
    ));
    let sk = ["sk-9f73s3ljTXVcMT3Blb3ljTqts", "KiGHXVcMT3BlbkFJLK7U"].concat();
    v.push(case(
        "dify/secret.env",
        format!("SECRET_KEY={sk}\n"),
        vec![("dify-default-credential", sk)],
    ));
    v.push(case(
        "dify/couchbase.env",
        "COUCHBASE_PASSWORD=password\n".to_owned(),
        vec![("dify-default-credential", "password".to_owned())],
    ));

    // --- decoys -----------------------------------------------------------------
    let d = |path: &str, content: String| case(path, content, vec![]);
    v.push(d("decoy/placeholders.env", "OPENAI_API_KEY=your-openai-api-key-here\nANTHROPIC_API_KEY=sk-ant-xxxxxxxxxxxxxxxxxxxxxxxx\nDB_PASSWORD=changeme\nGITHUB_TOKEN=<your-github-token>\nREDIS_PASSWORD=${REDIS_PASSWORD}\nSECRET_KEY=\n".to_owned()));
    v.push(d(
        "decoy/placeholder_key.py",
        format!("api_key = \"{}-proj-{}\"\n", "sk", "x".repeat(100)),
    ));
    v.push(d(
        "decoy/aws_docs.ini",
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            ["AKIAIOSFODNN7", "EXAMPLE"].concat(),
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "EXAMPLEKEY"].concat()
        ),
    ));
    v.push(d(
        "decoy/jwt_docs.md",
        format!(
            "Example: `{}.{}.{}`\n",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
            ["SflKxwRJSMeKKF2QT4fwpMeJf36P", "Ok6yJV_adQssw5c"].concat()
        ),
    ));
    v.push(d(
        "decoy/unsigned.ts",
        format!("const t = \"{}\";\n", jwt("none")),
    ));
    v.push(d(
        "decoy/stripe_docs.md",
        format!(
            "Try `{}_test_{}`.\n",
            "sk",
            ["4eC39HqLyjWDarjtT1zdp7dc"].concat()
        ),
    ));
    v.push(d("decoy/refs.py", "import os\npassword = os.environ[\"DB_PASSWORD\"]\napi_key = os.getenv('OPENAI_API_KEY')\n".to_owned()));
    v.push(d("decoy/workflow.yml", "steps:\n  - uses: actions/checkout@v4\n    with:\n      token: ${{ secrets.GITHUB_TOKEN }}\n      api_key: \"{{ vault_api_key }}\"\n".to_owned()));
    v.push(d(
        "decoy/Cargo.lock",
        format!(
            "[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nchecksum = \"{}\"\n",
            rand_str(HEX, 64)
        ),
    ));
    v.push(d(
        "decoy/package-lock.json",
        format!(
            "{{\n  \"node_modules/x\": {{\n    \"integrity\": \"sha512-{}==\",\n    \"token\": \"{}\"\n  }}\n}}\n",
            rand_str(B64, 86),
            rand_str(ALNUM, 30)
        ),
    ));
    v.push(d(
        "decoy/yarn.lock",
        format!(
            "x@^1.0.0:\n  version \"1.0.0\"\n  integrity sha512-{}==\n",
            rand_str(B64, 86)
        ),
    ));
    v.push(d(
        "decoy/uuids.yaml",
        "request_token: 123e4567-e89b-12d3-a456-426614174000\nsession_secret: 9b2c4f1e-8d7a-4c3b-a2e1-0f9e8d7c6b5a\n".to_owned(),
    ));
    v.push(d(
        "decoy/.pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: https://github.com/x/y\n    rev: {}\n",
            rand_str(HEX, 40)
        ),
    ));
    v.push(d(
        "decoy/commits.json",
        format!(
            "{{\"sha\": \"{}\", \"tree\": \"{}\"}}\n",
            rand_str(HEX, 40),
            rand_str(HEX, 40)
        ),
    ));
    v.push(d(
        "decoy/public.pem",
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}-----END PUBLIC KEY-----\n",
            pem_body(6)
        ),
    ));
    v.push(d(
        "decoy/authorized_keys",
        format!(
            "ssh-rsa AAAAB3NzaC1yc2E{} deploy@host\n",
            rand_str(B64, 300)
        ),
    ));
    v.push(d(
        "decoy/public.env",
        format!(
            "TIDB_PUBLIC_KEY={}\nSTRIPE_PUBLISHABLE_KEY=pk_live_{}\n",
            rand_str(ALNUM, 24),
            rand_str(ALNUM, 24)
        ),
    ));
    v.push(d(
        "decoy/logo.html",
        format!(
            "<img src=\"data:image/png;base64,{}\">\n",
            base64::engine::general_purpose::STANDARD
                .encode((0..300).map(|i| (i * 7 % 256) as u8).collect::<Vec<u8>>())
        ),
    ));
    v.push(d(
        "decoy/bad_crc.sh",
        format!("TOKEN={}\n", github_token_bad_crc()),
    ));
    v.push(d("decoy/i18n.json", "{\n  \"password\": \"Passwort\",\n  \"token\": \"Zugangsschlüssel\",\n  \"passwordPlaceholder\": \"Bitte Passwort eingeben\"\n}\n".to_owned()));
    v.push(d("decoy/test.toml", "[database]\nurl = \"postgres://postgres:password@localhost/test\"\nother = \"mysql://root:root@127.0.0.1:3306/db\"\n".to_owned()));
    v.push(d("decoy/ref_url.env", "DATABASE_URL=postgres://user:${DB_PASS}@db/app\nREDIS_URL=redis://:<password>@redis:6379\n".to_owned()));
    v.push(d("decoy/dify_settings.env", "ACCESS_TOKEN_EXPIRE_MINUTES=60\nPROMPT_GENERATION_MAX_TOKENS=512\nREFRESH_TOKEN_EXPIRE_DAYS=30\nNGINX_SSL_CERT_KEY_FILENAME=dify.key\nHTTP_REQUEST_NODE_SSL_CLIENT_KEY_DATA=\nWEAVIATE_TOKENIZATION=word\nPLUGIN_BASED_TOKEN_COUNTING_ENABLED=false\n".to_owned()));
    v.push(d(
        "decoy/README.md",
        "```\n-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n```\n".to_owned(),
    ));
    v.push(d(
        "decoy/image.yaml",
        format!("image: nginx@sha256:{}\n", rand_str(HEX, 64)),
    ));
    v.push(d(
        "decoy/code.py",
        "tokens = tokenize(text)\nsecret_name = 'DB_PASSWORD'\npassword_field = form.password\n"
            .to_owned(),
    ));
    // One decoy per provider detector: right prefix, wrong content.
    v.push(d(
        "decoy/anthropic.md",
        format!("`{}-ant-api03-{}AA`\n", "sk", "X".repeat(93)),
    ));
    v.push(d(
        "decoy/google.js",
        format!("const key = \"{}za{}\";\n", "AI", "X".repeat(35)),
    ));
    v.push(d(
        "decoy/azure.env",
        format!(
            "AZURE_OPENAI_ENDPOINT=https://x.openai.azure.com\nAZURE_OPENAI_API_KEY={}\n",
            "0".repeat(32)
        ),
    ));
    v.push(d(
        "decoy/deepseek.py",
        format!(
            "# deepseek\nKEY = \"{}-{}\"\n",
            "sk",
            "0123456789abcdef".repeat(2)
        ),
    ));
    v.push(d(
        "decoy/moonshot.css",
        format!(
            ".{}-{} {{ color: red }}\n",
            "sk",
            "abcdefghij".repeat(5).get(..48).unwrap()
        ),
    ));
    v.push(d(
        "decoy/zhipu_no_context.txt",
        format!("build {}.{}\n", rand_str(HEX, 32), rand_str(ALNUM, 16)),
    ));
    v.push(d(
        "decoy/aws_no_context.txt",
        format!("digest: {}\n", rand_str(B64, 40)),
    ));
    v.push(d(
        "decoy/gitlab.md",
        format!("`{}-{}`\n", "glpat", "x".repeat(20)),
    ));
    v.push(d(
        "decoy/slack.md",
        format!("SLACK_BOT_TOKEN={}-your-bot-token\n", "xoxb"),
    ));
    v.push(d(
        "decoy/slack_webhook.md",
        format!(
            "https://hooks.{}.com/services/T00000000/B00000000/{}\n",
            "slack",
            "X".repeat(24)
        ),
    ));
    v.push(d(
        "decoy/hf.py",
        format!("token = \"{}_{}\"\n", "hf", "x".repeat(34)),
    ));
    v.push(d(
        "decoy/sendgrid.md",
        format!("`{}.{}.{}`\n", "SG", "x".repeat(22), "x".repeat(43)),
    ));
    v.push(d(
        "decoy/dify_words.css",
        ".app-containerizationlayouts { }\n.dataset-documentuploadpanel { }\n".to_owned(),
    ));
    v.push(d(
        "decoy/github_pat.md",
        format!("`github_pat_{}_{}`\n", "X".repeat(22), "X".repeat(59)),
    ));
    v.push(d(
        "decoy/allowed.env",
        format!("API_TOKEN={} # envseal:allow\n", rand_str(ALNUM, 32)),
    ));
    v.push(d(
        "decoy/allowed_gitleaks.py",
        format!("key = \"{}\"  # gitleaks:allow\n", github_token('p')),
    ));
    v
}
